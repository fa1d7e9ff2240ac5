"""Data-parallel training over MPI (FireCaffe's scheme).

Every worker rank runs the same net on its own slice of each batch. Rank 0's
initial weights are broadcast; after backward the gradient arena is summed
across workers by the chosen strategy (``--comm``) and averaged, and every
worker applies the same update, so all ranks hold identical weights and p
ranks with batch b step exactly like one rank with batch p*b.

With ``--comm ps`` the last S ranks are parameter servers: workers push
gradients and pull fresh weights, and each server applies the solver update
to its shard of the parameters.

With ``--bucket-mb`` the arena is reduced in buckets on a background thread
while backward is still running (the arena is laid out in reverse layer order,
so backward fills it front to back); the time hidden that way is logged.
"""
import os
import time

import numpy as np

from ..core import backend
from . import watchdog
from ..comm import make_communicator
from ..solvers.solver import snapshot_wanted
from ..errors import FirecaffeError
from ..core.log import LOGGER

TAG_PS_HISTORY = 24          # solver history, parameter server -> worker 0, for snapshots


def MPI_IN_PLACE():
    from mpi4py import MPI
    return MPI.IN_PLACE


def MPI_WAITALL(requests):
    if requests:
        from mpi4py import MPI
        MPI.Request.Waitall(requests)
        requests.clear()


def make_sync(world, comm_name, *, ps_servers=1, bucket_mb=0.0, check_consistency=0):
    """The DataParallel object for this rank, or a clear error before any work."""
    if world is None:
        if comm_name == "nccl":
            raise FirecaffeError("--comm nccl needs MPI ranks and GPUs: run under mpirun with --gpu")
        return None
    return DataParallel(world, comm_name, ps_servers=ps_servers, bucket_mb=bucket_mb,
                        check_consistency=check_consistency)


class DataParallel:
    def __init__(self, world, comm_name, *, ps_servers=1, bucket_mb=0.0, check_consistency=0):
        from mpi4py import MPI
        self.world = world
        self.comm_name = comm_name
        self.split = None
        if comm_name == "ps":
            from ..comm.ps import split_servers
            self.split = split_servers(world, ps_servers)
            self.is_worker = self.split.role == "worker"
            self.server_comm = world.Split(0 if not self.is_worker else MPI.UNDEFINED, world.Get_rank())
            worker_comm = self.split.worker_comm
            self.num_workers = self.split.num_workers
        else:
            self.is_worker, worker_comm, self.num_workers = True, world, world.Get_size()
        self.worker_comm = worker_comm
        self.worker_rank = worker_comm.Get_rank() if self.is_worker else -1
        self.is_root = world.Get_rank() == 0
        node = world.Split_type(MPI.COMM_TYPE_SHARED, key=world.Get_rank())
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        _share_cores(self.local_size)
        self.bucket_bytes = int(bucket_mb * 2**20)
        self.check_every = check_consistency
        self.communicator = None
        if self.is_worker:
            options = {"split": self.split} if comm_name == "ps" else {}
            self.communicator = make_communicator(comm_name, worker_comm, **options)
        self.reducer = None
        self.comm_seconds = self.hidden_seconds = 0.0
        self.watchdog = watchdog.NoWatchdog()     # firecaffe/watchdog.py: --stall-timeout

    # --- set-up --------------------------------------------------------------
    def attach(self, solver):
        """Called by the Solver once its nets exist: start every rank from rank 0's weights."""
        self.solver = solver
        self.broadcast_weights(solver.net)
        if self.is_worker and self.bucket_bytes and self.comm_name != "ps":
            from ..comm.overlap import BucketReducer
            self.reducer = BucketReducer(self.communicator, solver.net.diff_arena, self.bucket_bytes)

    def broadcast_weights(self, net):
        """Rank 0's parameters to every rank (workers and parameter servers)."""
        with _host(net.param_arena) as buf:
            self.world.Bcast(buf, root=0)

    # --- one step ------------------------------------------------------------
    def forward_backward(self, net):
        if self.reducer is None or self.solver.param.iter_size > 1:
            return net.forward_backward()
        loss = net.forward_range()
        net.backward_range(grad_ready=self.reducer.ready)
        return loss

    def update(self, solver, rate):
        net = solver.net
        start = time.perf_counter()
        if self.comm_name == "ps":
            with self.watchdog.guard("the push of the gradients and pull of the weights", solver.iter):
                self.communicator.push_pull_(net.diff_arena, out=net.param_arena)
            self.comm_seconds = time.perf_counter() - start
            self.hidden_seconds = 0.0
        else:
            if self.reducer is not None and solver.param.iter_size == 1:
                with self.watchdog.guard("the bucketed allreduce of the gradients", solver.iter):
                    stats = self.reducer.wait()
                self.comm_seconds, self.hidden_seconds = stats.comm_s, stats.hidden_s
            else:
                with self.watchdog.guard("the allreduce of the gradients", solver.iter):
                    self.communicator.allreduce_(net.diff_arena)
                self.comm_seconds, self.hidden_seconds = time.perf_counter() - start, 0.0
            net.diff_arena *= net.dtype.type(1.0 / self.num_workers)
            solver.apply_rule(rate)
        p = solver.param
        if p.display and solver.iter % p.display == 0:
            LOGGER.info(f"Iteration {solver.iter}, communication ({self.comm_name}, {self.num_workers} workers) "
                        f"{self.comm_seconds * 1e3:.3f} ms, {self.hidden_seconds * 1e3:.3f} ms hidden behind backward")
        if self.check_every and (solver.iter + 1) % self.check_every == 0:
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

    # --- parameter server ----------------------------------------------------
    def serve(self, solver):
        """A server rank's life: apply the solver update to its shard until the workers close."""
        from ..comm.ps import PSServer
        from ..solvers.updates import grad_sumsq, make_update_rule
        net, param = solver.net, solver.param
        server = PSServer(self.split, net.param_arena.size, net.dtype)
        shard = server.shard
        params = net.param_arena[shard]
        rule = make_update_rule(param, params.size, net.dtype, backend.xp_of(params))
        rule.load_state([h[shard] for h in solver.rule.state()])     # restored history, if any
        lr_mult, decay_mult = solver.lr_mult[shard], solver.decay_mult[shard]
        scale = net.dtype.type(1.0 / self.num_workers)

        pending = []                  # history sends to worker 0, finished before the history changes

        def update(shard_sum):
            MPI_WAITALL(pending)
            shard_sum *= scale
            sumsq = None
            if param.clip_gradients >= 0:          # the norm spans every server's shard
                total = np.array([grad_sumsq(shard_sum)])
                self.server_comm.Allreduce(MPI_IN_PLACE(), total)
                sumsq = float(total[0])
            rate = solver.learning_rate()
            rule.apply(params, shard_sum, lr_mult, decay_mult, rate, solver.iter, global_sumsq=sumsq)
            solver.iter += 1
            action = solver.signals.agree(solver.iter) if solver.signals is not None else None
            if snapshot_wanted(param, solver.iter, action):       # worker 0 writes the snapshot
                pending.extend(self.world.Isend(backend.to_host(h), dest=0, tag=TAG_PS_HISTORY)
                               for h in rule.state())
            return params

        server.serve(update)
        MPI_WAITALL(pending)

    def gather_history(self, solver):
        """On worker 0 before a snapshot: fetch the solver history the servers hold."""
        if self.comm_name != "ps" or not self.is_root:
            return
        from ..comm.base import even_bounds
        bounds = even_bounds(solver.net.param_arena.size, self.split.num_servers)
        for s in range(self.split.num_servers):
            for history in solver.rule.state():
                with _host(history[bounds[s]:bounds[s + 1]]) as buf:
                    self.world.Recv(buf, source=self.num_workers + s, tag=TAG_PS_HISTORY)

    def close(self):
        if self.comm_name == "ps" and self.is_worker:
            self.communicator.close()
        if self.reducer is not None and hasattr(self.reducer, "close"):
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


class _host:
    """Context manager: a host buffer for ``array`` that is copied back on exit."""

    def __init__(self, array):
        self.array = array

    def __enter__(self):
        self.host = backend.to_host(self.array)
        return self.host

    def __exit__(self, *exc):
        if self.host is not self.array:
            self.array[...] = backend.xp_of(self.array).asarray(self.host)
