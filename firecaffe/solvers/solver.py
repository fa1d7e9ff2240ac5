"""Solver: Caffe's training loop (step, test, display, snapshot, restore).

The update arithmetic lives in updates.py and works on the flat parameter and
gradient arenas; this file owns everything around it, and the step runs one way
(Caffe's path: gradients ready, then ApplyUpdate):

    forward/backward -> window = parallel.reduce(diff) -> diff[window] *= 1/p
    -> apply_rule(window) -> parallel.publish(params)

``parallel`` (run/parallel.py, None for one process) is the data-parallel job:
its strategy sums the gradients and says which window of the arenas this rank
updates (all of them for peers, a shard on a parameter server, none on a ps
worker); nothing below calls back into the Solver. Parameter-server ranks run
this same loop (forward and backward are skipped there).

Settings arrive at construction: the SolverParameter and a frozen RunOptions
(core/options.py). Observers hook in: ``hooks`` fires ``iteration_start(iter)``,
``gradients(iter)`` (before the update; pycaffe's add_callback uses both), ``snapshot(iter, state
path)`` (before a snapshot is written), ``iteration_end(iter)`` (a hook may return an action with ``stop`` and
``snapshot``: the signal agreement does) and ``span`` (the update's time);
the nets have pycaffe's per-layer hooks.
"""
import time
from collections import deque

import numpy as np

from ..core import backend
from ..core.hooks import Hooks
from ..core.options import RunOptions
from . import divergence
from ..core.log import LOGGER, progress, setup as setup_logging
from . import checks, lr_policy, snapshot, sources
from .batch import BatchPlan, compare_resumed_batch, lr_scaling
from .updates import grad_sumsq, make_update_rule


class Solver:
    """A Caffe solver built from a SolverParameter or a solver.prototxt path.

    ``options``: the run's RunOptions (defaults: one process, pycaffe's behaviour);
    ``parallel``: this rank's DataParallel under MPI; ``train_net_hook(NetParameter)``
    may edit the train net before it is built.
    """

    def __init__(self, solver, *, path=None, parallel=None, options=None, overrides=None, quiet=False,
                 train_net_hook=None):
        from ..proto import io
        if not LOGGER.handlers:          # pycaffe logs by default; so does a solver made from Python
            setup_logging()
        self.options = options or RunOptions()
        self.path = solver if isinstance(solver, str) else path
        self.param = io.read_solver(solver) if isinstance(solver, str) else solver
        for key, value in (overrides or {}).items():
            setattr(self.param, key, value)
        self.parallel = parallel
        self.is_root = parallel is None or parallel.is_root
        self.quiet = quiet or not self.is_root
        self.workers = parallel.num_workers if parallel is not None else 1
        checks.validate(self.param, self.path)
        if self.param.HasField("random_seed") and self.param.random_seed >= 0:
            backend.seed(self.param.random_seed)
        self.plan = BatchPlan(self.options.global_batch, self.workers)
        shard = parallel.shard if parallel is not None else (0, 1)
        self.net = sources.make_net("TRAIN", sources.train_source(self.param, self.path), self.param.train_state,
                                    shard, sources.chain(train_net_hook, self.plan.hook))
        self.test_nets = [sources.make_net("TEST", src, state) for src, state in
                          sources.test_sources(self.param, self.path)] if self.is_root else []
        for test_net in self.test_nets:
            test_net.share_with(self.net)
        size = self.net.param_arena.size
        xp = backend.xp_of(self.net.param_arena)
        self.rule = make_update_rule(self.param, size, self.net.dtype, xp)
        checks.validate_lr_policy(self.param, self.path)          # before the first test and iteration
        self.lr_mult = _per_element(self.net, self.net.params_lr, xp)
        self.decay_mult = _per_element(self.net, self.net.params_weight_decay, xp)
        self.param.base_lr, self.lr_factor = lr_scaling(self.plan, self.param.base_lr, self.options.lr_scaling,
                                                        self.options.warmup_iters, speak=not self.quiet)
        self.iter = 0
        self.losses = deque(maxlen=max(1, self.param.average_loss))
        self.smoothed_loss = 0.0
        self.hooks = Hooks("iteration_start", "gradients", "iteration_end", "span", "snapshot")
        self.stopped = None           # the action that stopped step() early, if any
        self.last_snapshot = None
        self.restored_batch = (None, None)   # (global batch, workers) the restored snapshot recorded
        if parallel is not None:
            parallel.start(self.net, self.param.iter_size)

    # --- training ----------------------------------------------------------
    def add_callback(self, on_start, on_gradients):
        """Call ``on_start()`` at the start of every iteration and ``on_gradients()``
        once its gradients are ready, before the update (pycaffe's add_callback)."""
        self.hooks.add("iteration_start", lambda iteration: on_start())
        self.hooks.add("gradients", lambda iteration: on_gradients())

    def learning_rate(self):
        rate = lr_policy.learning_rate(self.param, self.iter)
        return rate * self.lr_factor(self.iter) if self.lr_factor is not None else rate

    def step(self, iters):
        stop = self.iter + iters
        show = self.options.show_progress
        bar = None if self.quiet or show is False else progress(self.param.max_iter or stop, self.iter,
                                                                force=bool(show))
        if bar is not None:         # an observer of the step like the others, for this call of step()
            advance = self.hooks.add("iteration_end", lambda iteration: _advance(bar, self.smoothed_loss), first=True)
        last_time, last_iter = time.perf_counter(), self.iter
        try:
            while self.iter < stop:
                p = self.param
                if p.test_interval and self.iter % p.test_interval == 0 and (
                        self.iter > 0 or p.test_initialization):
                    self.test_all()
                self.hooks.fire("iteration_start", self.iter)
                display = p.display and self.iter % p.display == 0
                self.net.clear_param_diffs()
                loss = 0.0
                for _ in range(max(1, p.iter_size)):
                    loss += self._forward_backward()
                loss /= max(1, p.iter_size)
                divergence.check_step(self, loss)      # names the iteration, layer (and rank)
                self._update_smoothed_loss(loss)
                if display and not self.quiet:
                    now = time.perf_counter()
                    elapsed, done = now - last_time, self.iter - last_iter
                    rate = done / elapsed if elapsed > 0 and done else 0.0
                    LOGGER.info(f"Iteration {self.iter} ({rate:.4g} iter/s, {elapsed:.4g}s/{p.display} iters), "
                                f"loss = {self.smoothed_loss:.6g}")
                    last_time, last_iter = now, self.iter
                    self._log_outputs(self.net, "Train", [self.net.blobs[n].data for n in self.net.outputs])
                self.hooks.fire("gradients", self.iter)
                self.apply_update(display)
                self.iter += 1
                if p.snapshot and self.iter % p.snapshot == 0:
                    self.snapshot()
                actions = [action for fn in self.hooks["iteration_end"] if (action := fn(self.iter)) is not None]
                if any(action.stop for action in actions):
                    self.stopped = next(action for action in actions if action.stop)
                    break
                if any(action.snapshot for action in actions) and not snapshot_due(p, self.iter):
                    self.snapshot()
        finally:
            if bar is not None:
                self.hooks.remove("iteration_end", advance)
                bar.close()

    def _forward_backward(self):
        if self.parallel is not None:
            return self.parallel.forward_backward(self.net, self.iter)
        return self.net.forward_backward()

    def apply_update(self, display=False):
        """Caffe's ApplyUpdate, one way: reduce across ranks, scale by 1/p, the rule, publish."""
        rate = self.learning_rate()
        if display and not self.quiet:
            LOGGER.info(f"Iteration {self.iter}, lr = {rate:.6g}")
        parallel, net = self.parallel, self.net
        if parallel is None:
            self.apply_rule(rate)
            return
        with parallel.step(self.iter, net.param_arena, display=display and self.is_root):
            window = parallel.reduce(net.diff_arena)
            if window is not None:
                net.diff_arena[window] *= net.dtype.type(1.0 / parallel.num_workers)   # the one place
                self.apply_rule(rate, window, parallel.strategy.sum_across)
            parallel.publish(net.param_arena)

    def apply_rule(self, rate, window=slice(None), sum_across=None):
        """The update rule on the arenas, or on ``window`` of them (a parameter server's shard).

        ``sum_across(x)`` adds a float over the ranks that update the other
        windows, so that gradient clipping sees the norm of the whole gradient.
        """
        net = self.net
        began = time.perf_counter_ns() if self.hooks["span"] else 0
        rule = self.rule if window == slice(None) else self.rule.window(window)
        sumsq = None
        if self.param.clip_gradients >= 0 and sum_across is not None:
            sumsq = sum_across(grad_sumsq(net.diff_arena[window]))
        rule.apply(net.param_arena[window], net.diff_arena[window], self.lr_mult[window],
                   self.decay_mult[window], rate, self.iter, global_sumsq=sumsq)
        for fn in self.hooks["span"]:
            fn("update", "update", began, time.perf_counter_ns(), {"rule": self.param.type or "SGD"})

    def _update_smoothed_loss(self, loss):
        self.losses.append(loss)
        self.smoothed_loss = sum(self.losses) / len(self.losses)

    def solve(self, resume_file=None):
        if resume_file:
            self.restore(resume_file)
        if not self.quiet:
            LOGGER.info(f"Solving {self.net.name}")
            LOGGER.info(f"Learning Rate Policy: {self.param.lr_policy}")
        began, first = time.perf_counter(), self.iter
        self.step(self.param.max_iter - self.iter)
        p = self.param
        if self.stopped is not None:
            if self.stopped.snapshot and not _periodic(p, self.iter):
                self.snapshot()
            if not self.quiet:
                LOGGER.info("Optimization stopped early.")
                self._summary(self.iter - first, time.perf_counter() - began)
            return
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0):
            self.snapshot()
        if p.display and self.iter % p.display == 0 and not self.quiet:
            loss = self.net.forward_range()
            LOGGER.info(f"Iteration {self.iter}, loss = {loss:.6g}")
        if p.test_interval and self.iter % p.test_interval == 0:
            self.test_all()
        if not self.quiet:
            LOGGER.info("Optimization Done.")          # Caffe's line, as log parsers expect it
            self._summary(self.iter - first, time.perf_counter() - began)

    def _summary(self, iterations, seconds):
        """Rank 0's closing line: iterations, time, throughput and where the last snapshot is."""
        batch = (self.plan.global_batch or 0) * max(1, self.param.iter_size)
        rate = f"{iterations / seconds:.3g} iter/s" if seconds > 0 and iterations else "no iterations"
        samples = f", {iterations * batch / seconds:.4g} samples/s" if batch and seconds > 0 and iterations else ""
        where = f"last snapshot {self.last_snapshot}" if self.last_snapshot else "no snapshot written"
        LOGGER.info(f"Trained {iterations} iteration(s) in {seconds:.4g} s ({rate}{samples}); {where}")

    # --- testing -----------------------------------------------------------
    def test_all(self):
        return [self.test(i) for i in range(len(self.test_nets))]

    def test(self, index=0):
        """Run test net ``index`` for its test_iter batches; log and return the mean outputs."""
        net = self.test_nets[index]
        LOGGER.info(f"Iteration {self.iter}, Testing net (#{index})")
        totals = None
        for _ in range(self.param.test_iter[index]):
            net.forward_range()
            values = [backend.to_host(net.blobs[n].data).astype(np.float64).ravel() for n in net.outputs]
            totals = values if totals is None else [t + v for t, v in zip(totals, values)]
        means = [t / self.param.test_iter[index] for t in totals or []]
        self._log_outputs(net, "Test", means)
        return {name: m for name, m in zip(net.outputs, means)}

    def _log_outputs(self, net, kind, values):
        k = 0
        weights = net.loss_weights_by_blob()
        for name, value in zip(net.outputs, values):
            for v in np.ravel(backend.to_host(value)):
                w = weights.get(name, 0.0)
                extra = f" (* {w:g} = {w * float(v):.6g} loss)" if w else ""
                LOGGER.info(f"    {kind} net output #{k}: {name} = {float(v):.6g}{extra}")
                k += 1

    # --- snapshots ---------------------------------------------------------
    def snapshot(self):
        """Write weights and solver state (atomically) on rank 0; return the state file's path.

        Under data parallelism every rank calls it at the same iteration (the
        parameter servers send rank 0 their shards of the solver history).
        """
        codec_state = None
        if self.parallel is not None:
            self.parallel.gather_history(self.rule.state())
            codec_state = self.parallel.gather_codec_state()
        if not self.is_root:
            return None
        path = snapshot.save(self, codec_state)
        self.last_snapshot = path
        return path

    def restore(self, path):
        self.restored_batch = snapshot.restore(self, path)

    def compare_resumed_batch(self, given):
        """After ``restore``: say (rank 0) whether the global batch or the ranks changed since the snapshot."""
        compare_resumed_batch(self.restored_batch, self.plan, given, speak=self.is_root)


def snapshot_due(param, iteration):
    """Whether solve() snapshots after reaching ``iteration``."""
    return bool(_periodic(param, iteration) or (param.snapshot_after_train and iteration == param.max_iter))


def _periodic(param, iteration):
    return bool(param.snapshot and iteration % param.snapshot == 0)


def _advance(bar, loss):
    bar.update(1)
    bar.set_postfix(loss=f"{loss:.4g}", refresh=False)


def _per_element(net, values, xp):
    out = np.empty(net.param_arena.size, dtype=net.dtype)
    for blob, offset, value in zip(net.learnable_params, net.param_offsets, values):
        out[offset:offset + blob.count] = value
    return xp.asarray(out)
