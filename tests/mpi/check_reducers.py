"""Every strategy against NumPy, in one launch: ``mpiexec -n W+2 python check_reducers.py W``.

The first W ranks are the workers. tree, ring and mpi run on them while the two
extra ranks wait; ps runs with the two extras as servers, then with one (the
last rank waits). Every rank draws every worker's data from a seed, so each one
computes the expected sum itself, in float64. Each strategy's ``allreduce_`` and
its step (``reduce``, the caller's update of the window it returns, ``publish``) are checked.
Results print per failure and as a summary line on rank 0; the exit status is 1
if any rank saw a failure.
"""
import functools
import importlib.util
import os
import sys
import time

import fake_cupy
import numpy as np
from tally import Tally
from mpi4py import MPI

from firecaffe.comm import make_strategy, names, strategy_class
from firecaffe.comm.base import WHOLE
from firecaffe.comm.topology import even_bounds
from firecaffe.core.options import RunOptions
from firecaffe.comm.overlap import BucketReducer
from firecaffe.comm.tree import binomial_links
from firecaffe.errors import FirecaffeError
from firecaffe.run.mpi_util import abort_on_error

SIZES = (1, 2, 7, 1000, 65537, 3 * 2**18 + 1)  # the last is 3 MB of float32
DTYPES = (np.float32, np.float64)
# Every registered strategy whose ranks are all workers (ps, with servers, is checked on its own),
# the tree and dbtree once more with small chunks so that the pipeline has many of them, hier
# with a ring among the node leaders, and the trees with the network's flow control forced on (on one
# node it is off: a child then sends chunk k up only once chunk k - credits has come back down), and
# the ring streamed in chunks as it is across nodes (on one node it runs step by step).
PEERS = tuple((name, {}) for name in names(default_only=True) if strategy_class(name).processes(1) == 1) + (
    ("tree", {"chunk_bytes": 4000}), ("dbtree", {"chunk_bytes": 4000}), ("hier", {"inter": "ring"}),
    ("tree", {"chunk_bytes": 40000, "credits": 2}), ("dbtree", {"chunk_bytes": 40000, "credits": 1}),
    ("ring", {"stream": True}), ("ring", {"stream": True, "chunk_bytes": 40000}))

world = MPI.COMM_WORLD
check = Tally(world)


def worker_data(rank, size, dtype):
    return np.random.default_rng([rank, size]).standard_normal(size).astype(dtype)


@functools.cache
def expected_sum(size, dtype, num_workers):
    """The exact (float64) sum of the workers' data, and how far any float sum of it may stray."""
    parts = [worker_data(rank, size, dtype).astype(np.float64) for rank in range(num_workers)]
    exact, magnitude = sum(parts), sum(np.abs(part) for part in parts)
    return exact, num_workers * np.finfo(dtype).eps * magnitude


def check_sum(result, num_workers, what):
    """``result`` equals the sum of every worker's data, within float rounding of any summation order."""
    exact, bound = expected_sum(result.size, result.dtype, num_workers)
    check(np.all(np.abs(result - exact) <= bound), f"{what}: allreduce_ differs from the NumPy sum")


def sleepy_barrier(comm):
    """Wait for the other ranks without spinning, so that waiting ranks leave the cores to the workers."""
    request = comm.Ibarrier()
    while not request.Test():
        time.sleep(0.002)


def step(strategy, diff, params):
    """One step as the Solver runs it, with new weights half the summed gradient; the window updated."""
    window = strategy.reduce(diff)
    if window is not None:
        params[window] = diff[window] * diff.dtype.type(0.5)
    strategy.publish(params)
    return window


def check_peer(name, options, workers):
    strategy = make_strategy(name, workers, wait=RunOptions.build().wait, **options)
    sleeping = type(strategy.comm).__name__ == "PoliteComm"
    check(sleeping == (os.environ.get("FIRECAFFE_WAIT") == "sleep" and strategy.own_waits),
          f"{name}: FIRECAFFE_WAIT={os.environ.get('FIRECAFFE_WAIT')} but its waits sleep: {sleeping}")
    sibling = strategy.waiting("sleep")
    check(type(sibling.comm).__name__ == "PoliteComm" or not strategy.own_waits,
          f"{name}: waiting('sleep') does not sleep")
    for dtype in DTYPES:
        for size in SIZES:
            what = f"{name}{options or ''} {np.dtype(dtype).name}[{size}] on {workers.size} workers"
            flat = worker_data(workers.rank, size, dtype)
            strategy.allreduce_(flat)
            check_sum(flat, workers.size, what)
            diff, params = worker_data(workers.rank, size, dtype), np.zeros(size, dtype)
            window = step(strategy, diff, params)
            check(window == WHOLE and strategy.sum_across is None, f"{what}: a peer updates {window}")
            check_sum(2 * params, workers.size, f"{what}: reduce, update, publish")


def check_parameter_server(world, num_servers):
    strategy = make_strategy("ps", world, servers=num_servers)
    workers = strategy.num_workers
    check(strategy.is_worker == (world.rank < workers), f"ps: rank {world.rank} has the wrong role")
    for dtype in DTYPES:
        for size in SIZES:
            what = f"ps({num_servers} servers) {np.dtype(dtype).name}[{size}] on {workers} workers"
            if not strategy.is_worker:
                flat = np.empty(size, dtype)
                strategy.reduce(flat)                                  # answers allreduce_: the sum
                strategy.publish(flat)                                 # goes back unchanged
                diff, params = np.zeros(size, dtype), np.zeros(size, dtype)
                window = strategy.reduce(diff)
                bounds = even_bounds(size, num_servers)
                index = world.rank - workers
                check(window == slice(bounds[index], bounds[index + 1]), f"{what}: server updates {window}")
                params[window] = diff[window] * dtype(0.5)
                check(strategy.sum_across(1.0) == num_servers, f"{what}: sum_across adds over the servers")
                strategy.publish(params)
                history = [np.full(size, world.rank, dtype), np.full(size, -world.rank, dtype)]
                strategy.gather_history_(history, root=0)
                continue
            flat = worker_data(strategy.rank, size, dtype)
            strategy.allreduce_(flat)
            check_sum(flat, workers, what)
            grad, params = worker_data(strategy.rank, size, dtype), np.zeros(size, dtype)
            window = step(strategy, grad, params)                    # the servers update, not the workers
            check(window is None, f"{what}: a ps worker updates {window}")
            check(np.array_equal(2 * params, flat), f"{what}: the step's weights differ from the allreduce_ sum")
            check(np.array_equal(grad, worker_data(strategy.rank, size, dtype)), f"{what}: the step changed the gradient")
            history = [np.zeros(size, dtype), np.zeros(size, dtype)]
            strategy.gather_history_(history, root=0)
            owner = np.repeat(np.arange(workers, workers + num_servers), np.diff(even_bounds(size, num_servers)))
            expected = history if strategy.rank else [owner.astype(dtype), -owner.astype(dtype)]
            check(all(np.array_equal(h, e) for h, e in zip(history, expected)), f"{what}: gather_history_")
    strategy.close()


def check_buckets(workers):
    # The thread's strategy talks through PoliteComm: Isend/Irecv/Test (tree, dbtree), Sendrecv (ring),
    # Iallreduce (mpi); each must still give the plain sum.
    for name in ("tree", "ring", "mpi", "dbtree"):
        strategy = make_strategy(name, workers)
        arena = np.zeros(100003, np.float32)
        reducer = BucketReducer(strategy, arena, bucket_bytes=40000)
        for iteration in range(2):
            what = f"BucketReducer({name}) iteration {iteration} on {workers.size} workers"
            arena[:] = 0
            data = worker_data(workers.rank, arena.size, np.float32)
            for offset in range(0, arena.size + 7919, 7919):  # backward fills the arena from the front
                arena[offset:offset + 7919] = data[offset:offset + 7919]
                reducer.ready(min(offset + 7919, arena.size))
            stats = reducer.wait()
            check_sum(arena, workers.size, what)
            check(0 <= stats.hidden_s <= stats.comm_s, f"{what}: stats {stats}")
        reducer.close()
    if workers.rank == 0:
        mode = "in the background" if reducer.threaded else "at wait()"
        print(f"BucketReducer: buckets reduced {mode}", flush=True)


def check_device_staging(world):
    """CuPy arrays go through pinned host buffers: every strategy, with a stand-in CuPy (see fake_cupy)."""
    size = 1001
    ps = make_strategy("ps", world, servers=2)
    if not ps.is_worker:
        check(ps.serve(size, np.float64) == 2, "ps server on fake device arrays")
        return
    fake_cupy.install()
    workers = ps.worker_comm
    for name, strategy in [(name, make_strategy(name, workers, **options)) for name, options in PEERS] + [("ps", ps)]:
        what = f"{name} on fake device arrays"
        flat = fake_cupy.FakeDeviceArray(worker_data(workers.rank, size, np.float64))
        strategy.allreduce_(flat)
        check_sum(flat.copy_to_host(), workers.size, what)
    grad = fake_cupy.FakeDeviceArray(worker_data(workers.rank, size, np.float64))
    params = fake_cupy.FakeDeviceArray(np.zeros(size))
    step(ps, grad, params)
    check_sum(params.copy_to_host(), workers.size, "ps step on fake device arrays")
    check(np.array_equal(grad.copy_to_host(), worker_data(workers.rank, size, np.float64)),
          "ps step on fake device arrays changed the gradient")
    ps.close()
    check(fake_cupy.transfers["get"] > 0 and fake_cupy.transfers["set"] > 0, "fake device arrays were not staged")
    del sys.modules["cupy"]


def check_errors():
    if importlib.util.find_spec("cupy") is None:
        try:
            make_strategy("nccl", world)
            check(False, "nccl without CuPy did not fail")
        except FirecaffeError as error:
            check(str(error).startswith("--comm nccl needs CuPy and an NVIDIA GPU on every rank"), str(error))
    for servers in (0, world.size):
        try:
            make_strategy("ps", world, servers=servers)
            check(False, f"ps with servers={servers} on {world.size} ranks did not fail")
        except FirecaffeError:
            check(True, "")
    for size in range(1, 12):
        for root in range(size):
            check(is_spanning_tree([binomial_links(rank, size, root) for rank in range(size)], root),
                  f"binomial_links({size} ranks, root {root}) is not a spanning tree")


def is_spanning_tree(links, root):
    """Parents and children agree, and every rank's chain of parents ends at ``root``."""
    parents = {child: rank for rank, (_, children) in enumerate(links) for child in children}
    if parents != {rank: parent for rank, (parent, _) in enumerate(links) if parent is not None}:
        return False
    for rank in range(len(links)):
        for _ in range(len(links)):
            rank = parents.get(rank, rank)
        if rank != root:
            return False
    return True


def main():
    abort_on_error()
    num_workers = int(sys.argv[1])
    assert world.size == num_workers + 2, "launch with two ranks more than the workers"
    is_worker = world.rank < num_workers
    workers = world.Split(color=int(is_worker), key=world.rank)
    if is_worker:
        for name, options in PEERS:
            check_peer(name, options, workers)
        check_buckets(workers)
    sleepy_barrier(world)
    check_parameter_server(world, 2)
    if importlib.util.find_spec("cupy") is None:  # without the real CuPy, a stand-in drives the device path
        check_device_staging(world)
    sleepy_barrier(world)
    first = world.Split(color=int(world.rank <= num_workers), key=world.rank)
    if world.rank <= num_workers:
        check_parameter_server(first, 1)
    sleepy_barrier(world)
    check_errors()
    check.finish(f"on {num_workers} workers")


if __name__ == "__main__":
    main()
