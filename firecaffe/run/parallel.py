"""Data-parallel training over MPI (FireCaffe's scheme): what the Solver's step asks of the job.

Every worker rank runs the same net on its own slice of each batch; rank 0's
initial weights are broadcast (``start``). The Solver owns the step and calls
down, one way (solvers/solver.py):

    with parallel.step(iteration, params, display):
        window = parallel.reduce(diff)        # the strategy sums the gradients (buckets: waits for them)
        diff[window] *= 1/p; rule(window)     # in the Solver: the one place the 1/p lives
        parallel.publish(params)              # ps: servers send their shards, workers pull

``step`` is where the observers of a step hook in: the stall watchdog's guard
(run/watchdog.py), the timeline's spans (``hooks``), the communication time in
the log and the consistency check. Nothing here calls back into the Solver.

Ranks that compute no gradients (parameter servers) run the same Solver loop:
``forward_backward`` does nothing there, ``reduce`` returns their shard.

With ``bucket_mb`` (strategies whose step is an allreduce) the arena is reduced
in buckets on a background thread while backward is still running (the arena is
laid out in reverse layer order, so backward fills it front to back).
"""
import contextlib
import os
import time

import numpy as np

from ..comm import make_strategy, strategy_class
from ..comm.compress import Param, make_codec
from ..comm.staging import staged
from ..core import backend
from ..core.hooks import Hooks
from ..core.log import LOGGER
from ..core.options import RunOptions
from ..errors import FirecaffeError
from . import mpi_util, watchdog

AUTO = "auto"          # --comm auto: the strategy is chosen in ``start`` (insight/auto.py)


def make_parallel(world, options=None, **reporting):
    """The DataParallel object for this rank (None for one process), or a clear error before any work."""
    options = options or RunOptions()
    if world is None:
        if options.comm != AUTO and strategy_class(options.comm).needs_gpu:
            raise FirecaffeError(f"--comm {options.comm} needs MPI ranks and GPUs: run under mpirun with --gpu")
        return None
    return DataParallel(world, options, **reporting)


class DataParallel:
    """This rank's part in a data-parallel job: its strategy, buckets, watchdog and step observers.

    ``last_words`` (watchdog.LastWords) and ``failure_context`` (mpi_util.FailureContext) are this
    process's, made by the command; a DataParallel built without them makes its own. ``chooser``:
    for ``--comm auto`` or ``--bucket-mb auto`` (options.bucket_auto), a callable
    ``chooser(world, net, ranks_per_node, comms)`` -> a candidate with ``comm`` and ``bucket_mb``
    (insight/auto.py), called in ``start`` once the net exists; every rank of an auto job is a worker,
    and its strategy is made there.
    """

    def __init__(self, world, options=None, last_words=None, failure_context=None, chooser=None):
        from mpi4py import MPI
        self.options = options = options or RunOptions()
        self.world = world
        self.comm_name = options.comm
        self.chooser = chooser
        deferred = AUTO in (options.comm, options.compress)     # made in ``start``, once the choice is made
        if (deferred or options.bucket_auto) and chooser is None:
            raise FirecaffeError("--comm auto, --bucket-mb auto and --compress auto need a chooser "
                                 "(firecaffe/insight/auto.py)")
        if deferred and options.comm != AUTO and strategy_class(options.comm).processes(1) > 1:
            raise FirecaffeError(f"--compress auto chooses for strategies whose ranks are all workers; with "
                                 f"--comm {options.comm} name the codec (--compress none, fp16, bf16 or int8)")
        self.codec = None if options.compress == AUTO else make_codec(options.compress, options.compress_start)
        self.strategy = None if deferred else self._make(options.comm)
        self.is_worker = self.strategy.is_worker if self.strategy else True
        self.worker_comm = self.strategy.worker_comm if self.strategy else world
        self.num_workers = self.strategy.num_workers if self.strategy else world.Get_size()
        self.worker_rank = self.worker_comm.Get_rank() if self.is_worker else -1
        self.is_root = world.Get_rank() == 0
        node = world.Split_type(MPI.COMM_TYPE_SHARED, key=world.Get_rank())
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        _share_cores(self.local_size)
        self.bucket_bytes = int(options.bucket_mb * 2**20)
        self.reducer = None
        self.comm_seconds = self.hidden_seconds = 0.0
        self.hooks = Hooks("span")     # (name, category, start_ns, end_ns, args) of each timed part
        self.watchdog = watchdog.install(self, options.stall_timeout, last_words or watchdog.LastWords(),
                                         failure_context or mpi_util.FailureContext())

    @property
    def shard(self):
        """``(index, count)`` of this rank's slice of each batch (a server reads like worker 0)."""
        return max(self.worker_rank, 0), self.num_workers

    def _make(self, name):
        options = self.options
        return make_strategy(name, self.world, servers=options.ps_servers, inter=options.inter,
                             wait=options.wait, cuda_aware=options.cuda_aware_mpi, codec=self.codec)

    # --- set-up --------------------------------------------------------------
    def start(self, net, iter_size=1):
        """Once the nets exist (every rank): the automatic choice, if asked; the codec learns the arena's
        parameters (and checks them); start from rank 0's weights; buckets over the diff arena."""
        if self.strategy is None or self.options.bucket_auto:
            per_node = self.world.allreduce(self.local_size, op=_max())        # set-up metadata
            comms = None if self.comm_name == AUTO else (self.comm_name,)
            choice = self.chooser(self.world, net, per_node, comms, self.num_workers)
            if self.strategy is None:
                if self.codec is None:
                    self.codec = make_codec(choice.compress, self.options.compress_start)
                self.comm_name, self.strategy = choice.comm, self._make(choice.comm)
            if self.options.bucket_auto:
                self.bucket_bytes = int(choice.bucket_mb * 2**20)
        self.codec.bind(arena_params(net))
        if self.is_root and not self.codec.lossless:
            LOGGER.info(f"Gradients compressed: --compress {self.codec.name} on the wire of --comm {self.comm_name}"
                        + (f" from iteration {self.codec.start}" if self.codec.start else ""))
        self.broadcast_weights(net)
        if self.is_worker and self.bucket_bytes and self.strategy.overlaps and iter_size == 1:
            from ..comm.overlap import BucketReducer
            self.reducer = BucketReducer(self.strategy, net.diff_arena, self.bucket_bytes,
                                         wait=self.options.bucket_wait, hooks=self.hooks)

    def broadcast_weights(self, net):
        """Rank 0's parameters to every rank (workers and parameter servers)."""
        root = self.is_root
        with staged(net.param_arena, device_ok=self.options.cuda_aware_mpi, download=root, upload=not root) as buf:
            self.world.Bcast(buf, root=0)

    # --- one step ------------------------------------------------------------
    def forward_backward(self, net, iteration=None):
        """This rank's forward and backward of ``iteration`` (buckets are reduced during backward)."""
        if iteration is not None:
            self.codec.begin(iteration)       # before backward: the bucket thread compresses (or not) by it
        if not self.is_worker:
            return 0.0
        if self.reducer is None:
            return net.forward_backward()
        loss = net.forward_range()
        net.backward_range(grad_ready=self.reducer.ready)
        return loss

    @contextlib.contextmanager
    def step(self, iteration, params, display=False):
        """Around the Solver's reduce, update and publish of ``params``: the watchdog's guard, timing,
        the log line (``display``) and, every N steps, the check that all workers hold the same weights."""
        self.comm_seconds = self.hidden_seconds = 0.0
        self._cpu_seconds = None
        self._step_began = time.perf_counter_ns()
        what = "the bucketed allreduce of the gradients" if self.reducer is not None else self.strategy.step_words
        self.codec.begin(iteration)
        with self.watchdog.guard(what, iteration):
            yield self
        if self.hooks["span"]:         # (no name is formatted for nobody)
            self._span(f"step ({self.comm_name})", "step", self._step_began, time.perf_counter_ns(),
                       {"reduced_in_buckets": self.reducer is not None})
        if display:
            coded = f", {self.codec.name}" if self.codec.active and not self.codec.lossless else ""
            LOGGER.info(f"Iteration {iteration}, communication ({self.comm_name}{coded}, {self.num_workers} workers) "
                        f"{self.comm_seconds * 1e3:.3f} ms, {self.hidden_seconds * 1e3:.3f} ms hidden behind backward"
                        + (f", {self._cpu_seconds * 1e3:.1f} ms CPU in the bucket thread"
                           if self._cpu_seconds is not None else ""))
        if self.is_worker and self.options.check_consistency and (iteration + 1) % self.options.check_consistency == 0:
            self.check_consistency(params, iteration + 1)

    def reduce(self, diff):
        """Sum the workers' gradients; the window of the arenas this rank updates (None: none)."""
        clock = time.perf_counter_ns
        began = self._step_began = clock()
        if self.reducer is not None:
            stats = self.reducer.wait()
            self.hidden_seconds, self._cpu_seconds = stats.hidden_s, stats.cpu_s
            self._step_began = clock()
            self._span("wait for buckets", "wait", began, self._step_began)
        window = self.strategy.reduce(diff, reduced=self.reducer is not None)
        self.comm_seconds = stats.comm_s if self.reducer is not None else (clock() - began) / 1e9
        return window

    def publish(self, params):
        """After the update: every worker's weights whole (ps: servers send, workers pull)."""
        began = time.perf_counter()
        self.strategy.publish(params)
        if self.reducer is None:
            self.comm_seconds += time.perf_counter() - began

    def _span(self, name, cat, start, end, args=None):
        for fn in self.hooks["span"]:
            fn(name, cat, start, end, args)

    def check_consistency(self, params, iteration):
        """Stop, naming the ranks, if any worker's weights differ from worker 0's."""
        params = backend.to_host(params)
        mine = np.array([float(np.sum(params, dtype=np.float64)),
                         float(np.dot(params.astype(np.float64), np.arange(1, params.size + 1) % 7919))])
        every = np.empty((self.num_workers, 2))
        self.worker_comm.Allgather(mine, every)
        differ = [r for r in range(self.num_workers) if not np.array_equal(every[r], every[0])]
        if differ:
            raise FirecaffeError(f"iteration {iteration}: weights differ across ranks: worker rank(s) "
                                 f"{', '.join(map(str, differ))} disagree with rank 0 (--check-consistency)")

    def gather_history(self, history):
        """Before a snapshot (every rank): rank 0's solver history made whole by the strategy."""
        self.strategy.gather_history_(history, root=0)

    def gather_codec_state(self):
        """Before a snapshot (every rank): rank 0 gets every worker's codec state (error-feedback residual,
        PowerSGD's Q), ``[{name: array}]`` in worker order; None elsewhere and when the codec keeps none."""
        if not self.codec.feedback or not self.is_worker:
            return None
        # once per snapshot, not the gradient path: mpi4py's pickled gather of a few arrays
        states = self.worker_comm.gather(self.codec.state(), root=0)
        return {"codec": self.codec.name, "workers": states} if self.is_root else None

    def load_codec_state(self, saved):
        """After a restore (every rank): this worker's codec state from ``saved`` (solvers/snapshot.py's
        record), if it was written by the same codec and number of workers; else the codec starts afresh."""
        if not self.codec.feedback or not self.is_worker:
            return
        if not saved or saved.get("codec") != self.codec.name or len(saved.get("workers", [])) != self.num_workers:
            if self.is_root:
                LOGGER.warning(f"the snapshot holds no --compress {self.codec.name} state for {self.num_workers} "
                               "workers: error feedback (and PowerSGD's Q) start afresh")
            return
        self.codec.load_state(saved["workers"][self.worker_rank])

    def close(self):
        self.strategy.close()
        if self.reducer is not None:
            self.reducer.close()


def _max():
    from mpi4py import MPI
    return MPI.MAX


def arena_params(net):
    """The net's learnable parameters as the codec sees them: ``[Param(name, arena offset, shape)]``."""
    params = []
    for index, (blob, offset) in enumerate(zip(net.learnable_params, net.param_offsets)):
        layer = net.layers[net.param_owner_layer[index]]
        k = next((k for k, b in enumerate(layer.blobs) if b is blob), 0)
        params.append(Param(f"layer '{layer.name}' param {k}", offset, tuple(blob.shape)))
    return params


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
