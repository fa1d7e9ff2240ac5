"""Every strategy x codec against a float64 sum, in one launch: ``mpiexec -n W+1 python check_compress.py W``.

The first W ranks are the workers; the last one waits, except for ps, where it serves.
Each rank draws every worker's data from a seed and computes the exact sum itself
(float64), so each rank checks its own result against the codec's error bound:

- fp16, bf16: every hop rounds the partial sum it sends (2^-11, 2^-8 of it) and the
  total is rounded once more on its way down: (hops + 1) roundings of at most the
  sum of magnitudes, hops < W;
- int8: each rounding is at most half a block's scale (the block's largest |value| / 127);
- powersgd at full rank: exact up to float32 rounding.

Also: every worker holds bit-identical results; int8's and PowerSGD's error feedback keep
the running sum of what was sent within the residuals of the true running sum (the
residuals, summed over ranks, are exactly what is missing); the bucket reducer with
each codec; mpi and ps refusing what they cannot do. Prints a summary on rank 0.
"""
import sys

import numpy as np
from mpi4py import MPI

from firecaffe.comm import make_strategy
from firecaffe.comm.compress import layout_from_shapes, make_codec
from firecaffe.comm.overlap import BucketReducer
from firecaffe.errors import FirecaffeError
from firecaffe.run.mpi_util import abort_on_error

WORKERS = int(sys.argv[1])
world = MPI.COMM_WORLD
is_worker = world.rank < WORKERS
workers = world.Split(0 if is_worker else MPI.UNDEFINED, key=world.rank)
failures, cases = [], 0
# (rows, cols) matrices of min side 6 and vectors: PowerSGD at rank 6 is full rank for every matrix
SHAPES = [(6, 10), (10,), (6, 3, 2, 2), (1,), (9, 6), (7,)]
SIZE = sum(int(np.prod(shape)) for shape in SHAPES)
ROUNDING = {"fp16": 2.0 ** -11, "bf16": 2.0 ** -8}
PEERS = [("tree", {}), ("tree", {"chunk_bytes": 64}), ("tree", {"chunk_bytes": 64, "credits": 1}),
         ("dbtree", {"chunk_bytes": 64}), ("ring", {}), ("ring", {"stream": True, "chunk_bytes": 32}),
         ("hier", {}), ("hier-2", {"inter": "tree"}), ("hier-2", {"inter": "ring"}), ("mpi", {})]
CODECS = ("fp16", "bf16", "int8", "powersgd:6")


def check(ok, what):
    global cases
    cases += 1
    if not ok:
        failures.append(what)
        print(f"FAIL rank {world.rank}: {what}", flush=True)


def data(rank, step, size=SIZE):
    return (np.random.default_rng([rank, step, size]).standard_normal(size) * 3).astype(np.float32)


def exact(step, size=SIZE):
    parts = [data(rank, step, size).astype(np.float64) for rank in range(WORKERS)]
    return sum(parts), sum(np.abs(part) for part in parts)


def bound(codec, magnitude):
    rounds = WORKERS + 1
    if codec in ROUNDING:
        return rounds * ROUNDING[codec] * magnitude + 1e-5
    if codec == "int8":
        return np.full_like(magnitude, rounds * magnitude.max() / 254 + 1e-5)
    return 1e-4 * magnitude.max() + 1e-5             # powersgd at full rank


def codec_for(text):
    codec = make_codec(text)
    codec.bind(layout_from_shapes(SHAPES))
    return codec


def identical(values, what, comm):
    every = np.empty((comm.size, values.size), values.dtype)
    comm.Allgather(values, every)
    check(all(np.array_equal(row, every[0]) for row in every), f"{what}: workers hold different results")


def hier_two_per_node(inter, codec):
    """hier as if every two ranks shared a node (one machine has one node): its leaders' wire is coded."""
    strategy = make_strategy("hier", workers, codec=codec, inter=inter)
    strategy.node = workers.Split(workers.rank // 2, key=workers.rank)
    leader = strategy.node.rank == 0
    strategy.leaders = workers.Split(0 if leader else MPI.UNDEFINED, key=workers.rank)
    strategy.across = make_strategy(inter, strategy.leaders, codec=codec) if leader else None
    return strategy


def check_peer(name, options, text):
    what = f"{name}{options or ''} --compress {text} on {WORKERS} workers"
    try:
        if name == "hier-2":
            strategy = hier_two_per_node(options["inter"], codec_for(text))
        else:
            strategy = make_strategy(name, workers, codec=codec_for(text), **options)
    except FirecaffeError as error:
        check(name == "mpi" and text != "powersgd:6" and "--comm mpi cannot send" in str(error), f"{what}: {error}")
        return
    check(not (name == "mpi" and text != "powersgd:6"), f"{what}: mpi did not refuse")
    flat = data(workers.rank, 0)
    strategy.allreduce_(flat)
    total, magnitude = exact(0)
    error = np.abs(flat - total)
    check(np.all(error <= bound(text.split(":")[0] if text != "powersgd:6" else text, magnitude)),
          f"{what}: error {error.max():.3g} beyond the codec's bound")
    identical(flat, what, workers)


def check_feedback(text, steps=30):
    """The running sum of what was sent + every rank's residual == the true running sum."""
    codec = codec_for(text)
    strategy = make_strategy("ring", workers, codec=codec)
    sent, truth = np.zeros(SIZE), np.zeros(SIZE)
    for step in range(steps):
        flat = data(workers.rank, step)
        strategy.allreduce_(flat)
        sent += flat
        truth += exact(step)[0]
    residual = codec.state()["residual"].astype(np.float64)
    workers.Allreduce(MPI.IN_PLACE, residual, op=MPI.SUM)
    what = f"--compress {text} error feedback over {steps} steps"
    gap = np.abs(sent + residual - truth)
    check(gap.max() <= 1e-3 * np.abs(truth).max() + 1e-3, f"{what}: sent + residuals misses the truth by {gap.max():.3g}")
    one_step = bound("int8", exact(0)[1]).max() if text == "int8" else np.abs(exact(0)[0]).max()
    check(np.abs(sent - truth).max() <= one_step,
          f"{what}: the running sum strays {np.abs(sent - truth).max():.3g} (one step's bound {one_step:.3g})")


def check_buckets(text):
    what = f"BucketReducer --compress {text}"
    codec = codec_for(text)
    strategy = make_strategy("tree", workers, codec=codec)
    arena = data(workers.rank, 5)
    reducer = BucketReducer(strategy, arena, bucket_bytes=64)
    for offset in range(0, SIZE + 17, 17):
        reducer.ready(min(offset + 17, SIZE))
    reducer.wait()
    reducer.close()
    total, magnitude = exact(5)
    check(np.all(np.abs(arena - total) <= bound(text.split(":")[0] if text != "powersgd:6" else text, magnitude)),
          f"{what}: error {np.abs(arena - total).max():.3g} beyond the codec's bound")
    identical(arena, what, workers)


def check_parameter_server(text):
    what = f"ps --compress {text}"
    try:
        strategy = make_strategy("ps", world, servers=world.size - WORKERS, codec=codec_for(text))
    except FirecaffeError as error:
        check(text.startswith("powersgd") and "--comm ps cannot send" in str(error), f"{what}: {error}")
        return
    check(not text.startswith("powersgd"), f"{what}: ps took PowerSGD")
    if strategy.is_worker:
        flat = data(strategy.rank, 0)
        strategy.allreduce_(flat)
        total, magnitude = exact(0)
        # each push is rounded once; the server adds the decoded pushes in float32, sends the sum in float32
        check(np.all(np.abs(flat - total) <= bound(text, magnitude)), f"{what}: error {np.abs(flat - total).max():.3g}")
    else:
        strategy.serve(SIZE)
    strategy.close()


@abort_on_error
def main():
    for text in CODECS:
        if is_worker:
            for name, options in PEERS:
                check_peer(name, options, text)
            check_buckets(text)
            if text in ("int8", "powersgd:6"):
                check_feedback(text)
        world.Barrier()
        check_parameter_server(text)
    failed = np.array([len(failures)])
    world.Allreduce(MPI.IN_PLACE, failed, op=MPI.SUM)
    if world.rank == 0:
        print(f"{cases} checks on {WORKERS} workers, {int(failed[0])} failed", flush=True)
    sys.exit(1 if failed[0] else 0)


main()
