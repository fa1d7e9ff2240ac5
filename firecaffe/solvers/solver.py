"""Solver: Caffe's training loop (step, test, display, snapshot, restore).

The update arithmetic lives in updates.py and works on the flat parameter and
gradient arenas; this file owns everything around it. Data parallelism plugs in
through ``self.sync`` (firecaffe/run/parallel.py): its strategy turns the
ranks' gradients into new weights, calling back ``apply_rule`` for the update.
Parameter-server ranks run this same loop (the strategy skips forward and
backward there and applies the rule to their shard of the arenas).
"""
import os
import time
from collections import deque

import numpy as np

from ..core import backend
from . import divergence
from ..errors import FirecaffeError
from ..core.log import LOGGER, progress, setup as setup_logging
from ..engine.net import Net
from . import checks, lr_policy, snapshot
from .updates import grad_sumsq, make_update_rule


class Solver:
    """A Caffe solver built from a SolverParameter or a solver.prototxt path."""

    timeline = None        # run/timeline.py's recorder while `--timeline` records

    def __init__(self, solver, *, path=None, sync=None, shard=(0, 1), overrides=None, quiet=False,
                 train_net_hook=None):
        from ..proto import io
        self.train_net_hook = train_net_hook
        if not LOGGER.handlers:          # pycaffe logs by default; so does a solver made from Python
            setup_logging()
        self.path = solver if isinstance(solver, str) else path
        self.param = io.read_solver(solver) if isinstance(solver, str) else solver
        for key, value in (overrides or {}).items():
            setattr(self.param, key, value)
        self.sync = sync
        self.is_root = sync is None or sync.is_root
        self.quiet = quiet or not self.is_root
        checks.validate(self.param, self.path)
        if self.param.HasField("random_seed") and self.param.random_seed >= 0:
            backend.seed(self.param.random_seed)
        self.net = self._make_net("TRAIN", self._train_source(), self.param.train_state, shard)
        self.test_nets = [self._make_net("TEST", src, state, (0, 1))
                          for src, state in self._test_sources()] if self.is_root else []
        for test_net in self.test_nets:
            share_weights(test_net, self.net)
        size = self.net.param_arena.size
        xp = backend.xp_of(self.net.param_arena)
        self.rule = make_update_rule(self.param, size, self.net.dtype, xp)
        checks.validate_lr_policy(self.param, self.path)          # before the first test and iteration
        self.lr_mult = _per_element(self.net, self.net.params_lr, xp)
        self.decay_mult = _per_element(self.net, self.net.params_weight_decay, xp)
        self.iter = 0
        self.losses = deque(maxlen=max(1, self.param.average_loss))
        self.smoothed_loss = 0.0
        self.callbacks = []             # (on_start, on_gradients) pairs, pycaffe's add_callback
        self.signals = None           # run/signals.Signals when the CLI trains: agree(iter) -> action
        self.lr_factor = None         # iteration -> factor on the policy's rate (--warmup-iters)
        self.show_progress = None     # None: a bar on an interactive terminal; True: always (--progress)
        self.global_batch = None      # recorded in snapshots, to name a change when resuming
        self.stopped = None           # the action that stopped step() early, if any
        self.last_snapshot = None
        if self.sync is not None:
            self.sync.attach(self)

    # --- construction ------------------------------------------------------
    def _resolve(self, path):
        """Caffe resolves paths against the working directory; fall back to the solver's folder."""
        if os.path.exists(path) or self.path is None or os.path.isabs(path):
            return path
        alt = os.path.join(os.path.dirname(self.path), path)
        return alt if os.path.exists(alt) else path

    def _train_source(self):
        p = self.param
        given = [f for f in ("train_net_param", "train_net", "net_param", "net") if p.HasField(f)]
        if len(given) != 1:
            where = self.path or "solver"
            if not given:
                raise FirecaffeError(f"{where}: no net given (set one of net, net_param, train_net, train_net_param)")
            raise FirecaffeError(f"{where}: give only one of net, net_param, train_net, train_net_param "
                                 f"(found {', '.join(given)})")
        field = given[0]
        return self._resolve(getattr(p, field)) if field in ("train_net", "net") else getattr(p, field)

    def _test_sources(self):
        p = self.param
        sources = [self._resolve(path) for path in p.test_net] + list(p.test_net_param)
        if not sources and len(p.test_iter):
            general = self._train_source()
            sources = [general] * len(p.test_iter)
        if len(p.test_iter) != len(sources):
            raise FirecaffeError(f"{self.path or 'solver'}: {len(sources)} test net(s) but "
                                 f"{len(p.test_iter)} test_iter value(s); give one test_iter per test net")
        states = list(p.test_state) + [None] * (len(sources) - len(p.test_state))
        return list(zip(sources, states))

    def _make_net(self, phase, source, state, shard):
        from ..proto import io
        level = state.level if state is not None else 0
        stages = list(state.stage) if state is not None else []
        path = source if isinstance(source, str) else None
        if phase == "TRAIN" and self.train_net_hook is not None:
            param = io.read_net(source) if path else source
            self.train_net_hook(param)
            source = param
        return Net(source, phase=phase, level=level, stages=stages, shard=shard, source=path)

    # --- training ----------------------------------------------------------
    def add_callback(self, on_start, on_gradients):
        """Call ``on_start()`` at the start of every iteration and ``on_gradients()``
        once its gradients are ready, before the update (pycaffe's add_callback)."""
        self.callbacks.append((on_start, on_gradients))

    def learning_rate(self):
        rate = lr_policy.learning_rate(self.param, self.iter)
        return rate * self.lr_factor(self.iter) if self.lr_factor is not None else rate

    def step(self, iters):
        stop = self.iter + iters
        bar = None if self.quiet or self.show_progress is False else progress(
            self.param.max_iter or stop, self.iter, force=bool(self.show_progress))
        last_time, last_iter = time.perf_counter(), self.iter
        try:
            while self.iter < stop:
                p = self.param
                if p.test_interval and self.iter % p.test_interval == 0 and (
                        self.iter > 0 or p.test_initialization):
                    self.test_all()
                for on_start, _ in self.callbacks:
                    on_start()
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
                for _, on_gradients in self.callbacks:
                    on_gradients()
                self.apply_update(display)
                self.iter += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{self.smoothed_loss:.4g}", refresh=False)
                if p.snapshot and self.iter % p.snapshot == 0:
                    self.snapshot()
                if self.signals is not None:
                    action = self.signals.agree(self.iter)
                    if action.stop:
                        self.stopped = action
                        break
                    if action.snapshot and not snapshot_due(p, self.iter):
                        self.snapshot()
        finally:
            if bar is not None:
                bar.close()

    def _forward_backward(self):
        if self.sync is not None:
            return self.sync.forward_backward(self.net)
        return self.net.forward_backward()

    def apply_update(self, display=False):
        rate = self.learning_rate()
        if display and not self.quiet:
            LOGGER.info(f"Iteration {self.iter}, lr = {rate:.6g}")
        if self.sync is not None:
            self.sync.update(self, rate)
        else:
            self.apply_rule(rate)

    def apply_rule(self, rate, window=slice(None), sum_across=None):
        """Caffe's ApplyUpdate on the arenas, or on ``window`` of them (a parameter server's shard).

        ``sum_across(x)`` adds a float over the ranks that update the other
        windows, so that gradient clipping sees the norm of the whole gradient.
        """
        net = self.net
        began = time.perf_counter_ns() if self.timeline is not None else 0
        rule = self.rule if window == slice(None) else self.rule.window(window)
        sumsq = None
        if self.param.clip_gradients >= 0 and sum_across is not None:
            sumsq = sum_across(grad_sumsq(net.diff_arena[window]))
        rule.apply(net.param_arena[window], net.diff_arena[window], self.lr_mult[window],
                   self.decay_mult[window], rate, self.iter, global_sumsq=sumsq)
        if self.timeline is not None:
            self.timeline.add("update", "update", began, time.perf_counter_ns(), {"rule": self.param.type or "SGD"})

    def _update_smoothed_loss(self, loss):
        self.losses.append(loss)
        self.smoothed_loss = sum(self.losses) / len(self.losses)

    def solve(self, resume_file=None):
        if resume_file:
            self.restore(resume_file)
        if not self.quiet:
            LOGGER.info(f"Solving {self.net.name}")
            LOGGER.info(f"Learning Rate Policy: {self.param.lr_policy}")
        self.step(self.param.max_iter - self.iter)
        p = self.param
        if self.stopped is not None:
            if self.stopped.snapshot and not _periodic(p, self.iter):
                self.snapshot()
            if not self.quiet:
                LOGGER.info("Optimization stopped early.")
            return
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0):
            self.snapshot()
        if p.display and self.iter % p.display == 0 and not self.quiet:
            loss = self.net.forward_range()
            LOGGER.info(f"Iteration {self.iter}, loss = {loss:.6g}")
        if p.test_interval and self.iter % p.test_interval == 0:
            self.test_all()
        if not self.quiet:
            LOGGER.info("Optimization Done.")

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
        if self.sync is not None:
            self.sync.gather_history(self)
        if not self.is_root:
            return None
        path = snapshot.save(self)
        self.last_snapshot = path
        return path

    def restore(self, path):
        snapshot.restore(self, path)


def snapshot_due(param, iteration):
    """Whether solve() snapshots after reaching ``iteration``."""
    return bool(_periodic(param, iteration) or (param.snapshot_after_train and iteration == param.max_iter))


def _periodic(param, iteration):
    return bool(param.snapshot and iteration % param.snapshot == 0)


def share_weights(test_net, train_net):
    """Make the test net read the train net's weights by layer name (no copies)."""
    train_layers = train_net.layer_dict
    for layer in test_net.layers:
        source = train_layers.get(layer.name)
        if source is None or len(source.blobs) != len(layer.blobs):
            continue
        for blob, src in zip(layer.blobs, source.blobs):
            if blob.shape != src.shape:
                raise FirecaffeError(f"layer '{layer.name}': test net blob shape {blob.shape} differs "
                                     f"from the train net's {src.shape}")
            blob.data = src.data


def _per_element(net, values, xp):
    out = np.empty(net.param_arena.size, dtype=net.dtype)
    for blob, offset, value in zip(net.learnable_params, net.param_offsets, values):
        out[offset:offset + blob.count] = value
    return xp.asarray(out)
