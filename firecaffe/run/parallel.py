"""Data-parallel training over MPI (FireCaffe's scheme).

Every worker rank runs the same net on its own slice of each batch. Rank 0's
initial weights are broadcast; after backward the strategy chosen with
``--comm`` (firecaffe/comm) turns the ranks' gradient arenas into new weights:
it sums them and calls back ``_update``, which averages the sum (the one place
the 1/p lives) and applies the solver's own rule, so all ranks hold identical
weights and p ranks with batch b step exactly like one rank with batch p*b.

Ranks that compute no gradients (parameter servers) run the same Solver loop:
forward and backward are skipped there, and the strategy calls ``_update`` on
their shard of the arenas.

With ``--bucket-mb`` (strategies whose step is an allreduce) the arena is
reduced in buckets on a background thread while backward is still running
(the arena is laid out in reverse layer order, so backward fills it front to
back); the time hidden that way is logged.
"""
import os
import time

import numpy as np

from ..comm import make_strategy, strategy_class
from ..comm.base import staged
from ..core import backend
from ..core.log import LOGGER
from ..errors import FirecaffeError
from . import watchdog


def make_sync(world, comm_name, *, ps_servers=1, bucket_mb=0.0, check_consistency=0, inter="tree"):
    """The DataParallel object for this rank, or a clear error before any work."""
    if world is None:
        if strategy_class(comm_name).needs_gpu:
            raise FirecaffeError(f"--comm {comm_name} needs MPI ranks and GPUs: run under mpirun with --gpu")
        return None
    return DataParallel(world, comm_name, ps_servers=ps_servers, bucket_mb=bucket_mb,
                        check_consistency=check_consistency, inter=inter)


class DataParallel:
    timeline = None        # run/timeline.py's recorder while `--timeline` records

    def __init__(self, world, comm_name, *, ps_servers=1, bucket_mb=0.0, check_consistency=0, inter="tree"):
        from mpi4py import MPI
        self.world = world
        self.comm_name = comm_name
        self.strategy = make_strategy(comm_name, world, servers=ps_servers, inter=inter)
        self.is_worker = self.strategy.is_worker
        self.worker_comm = self.strategy.worker_comm
        self.num_workers = self.strategy.num_workers
        self.worker_rank = self.worker_comm.Get_rank() if self.is_worker else -1
        self.is_root = world.Get_rank() == 0
        node = world.Split_type(MPI.COMM_TYPE_SHARED, key=world.Get_rank())
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        _share_cores(self.local_size)
        self.bucket_bytes = int(bucket_mb * 2**20)
        self.check_every = check_consistency
        self.reducer = None
        self.comm_seconds = self.hidden_seconds = 0.0
        self.watchdog = watchdog.NoWatchdog()     # firecaffe/run/watchdog.py: --stall-timeout

    # --- set-up --------------------------------------------------------------
    def attach(self, solver):
        """Called by the Solver once its nets exist: start every rank from rank 0's weights."""
        self.solver = solver
        self.broadcast_weights(solver.net)
        if self.is_worker and self.bucket_bytes and self.strategy.overlaps:
            from ..comm.overlap import BucketReducer
            self.reducer = BucketReducer(self.strategy, solver.net.diff_arena, self.bucket_bytes)

    def broadcast_weights(self, net):
        """Rank 0's parameters to every rank (workers and parameter servers)."""
        root = self.is_root
        with staged(net.param_arena, device_ok=True, download=root, upload=not root) as buf:
            self.world.Bcast(buf, root=0)

    # --- one step ------------------------------------------------------------
    def forward_backward(self, net):
        if not self.is_worker:
            return 0.0
        if self.reducer is None or self.solver.param.iter_size > 1:
            return net.forward_backward()
        loss = net.forward_range()
        net.backward_range(grad_ready=self.reducer.ready)
        return loss

    def update(self, solver, rate):
        """The strategy turns every rank's gradient into new weights, calling ``_update`` for the rule."""
        net = solver.net
        bucketed = self.reducer is not None and solver.param.iter_size == 1
        self.hidden_seconds = update_seconds = 0.0
        if bucketed:
            waited = time.perf_counter_ns() if self.timeline is not None else 0
            with self.watchdog.guard("the bucketed allreduce of the gradients", solver.iter):
                stats = self.reducer.wait()
            if self.timeline is not None:
                self.timeline.add("wait for buckets", "wait", waited, time.perf_counter_ns())
            self.hidden_seconds = stats.hidden_s

        def update_window(window, sum_across):
            nonlocal update_seconds
            start = time.perf_counter()
            net.diff_arena[window] *= net.dtype.type(1.0 / self.num_workers)
            solver.apply_rule(rate, window, sum_across)
            update_seconds += time.perf_counter() - start

        start, step_began = time.perf_counter(), time.perf_counter_ns() if self.timeline is not None else 0
        what = "the bucketed allreduce of the gradients" if bucketed else self.strategy.step_words
        with self.watchdog.guard(what, solver.iter):
            self.strategy.step_(net.diff_arena, net.param_arena, update_window, reduced=bucketed)
        if self.timeline is not None:
            self.timeline.add(f"step ({self.comm_name})", "step", step_began, time.perf_counter_ns(),
                              {"reduced_in_buckets": bucketed})
        self.comm_seconds = stats.comm_s if bucketed else time.perf_counter() - start - update_seconds
        p = solver.param
        if p.display and solver.iter % p.display == 0:
            LOGGER.info(f"Iteration {solver.iter}, communication ({self.comm_name}, {self.num_workers} workers) "
                        f"{self.comm_seconds * 1e3:.3f} ms, {self.hidden_seconds * 1e3:.3f} ms hidden behind backward"
                        + (f", {stats.cpu_s * 1e3:.1f} ms CPU in the bucket thread" if bucketed else ""))
        if self.is_worker and self.check_every and (solver.iter + 1) % self.check_every == 0:
            self.check_consistency(net, solver.iter + 1)

    def check_consistency(self, net, iteration):
        """Stop, naming the ranks, if any worker's weights differ from worker 0's."""
        params = backend.to_host(net.param_arena)
        mine = np.array([float(np.sum(params, dtype=np.float64)),
                         float(np.dot(params.astype(np.float64), np.arange(1, params.size + 1) % 7919))])
        every = np.empty((self.num_workers, 2))
        self.worker_comm.Allgather(mine, every)
        differ = [r for r in range(self.num_workers) if not np.array_equal(every[r], every[0])]
        if differ:
            raise FirecaffeError(f"iteration {iteration}: weights differ across ranks: worker rank(s) "
                                 f"{', '.join(map(str, differ))} disagree with rank 0 (--check-consistency)")

    def gather_history(self, solver):
        """Before a snapshot (every rank): rank 0's solver history made whole by the strategy."""
        self.strategy.gather_history_(solver.rule.state(), root=0)

    def close(self):
        self.strategy.close()
        if self.reducer is not None:
            self.reducer.close()


def _share_cores(ranks_on_node):
    """Give each rank its share of the node's cores for BLAS, so that ranks
    do not oversubscribe the CPU with BLAS threads (unless the user chose)."""
    if any(v in os.environ for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")):
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(max(1, (os.cpu_count() or 1) // ranks_on_node))
