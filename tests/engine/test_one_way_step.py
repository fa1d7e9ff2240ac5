"""The Solver owns the step and calls down: reduce -> 1/p on the window -> the rule -> publish.

A stand-in for the data-parallel job records the calls: no MPI is needed, and the test pins the
order, that only the window ``reduce`` returned is scaled and updated (all of it for a peer, a
shard for a parameter server, nothing for a ps worker), and the layer hooks pycaffe scripts use.
"""
import contextlib
import os

import numpy as np
import pytest

from firecaffe.core.options import RunOptions
from firecaffe.proto import io
from firecaffe.solvers import Solver

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOLVER = os.path.join(REPO, "nets", "lenet_digits", "solver.prototxt")


class Strategy:
    sum_across = None


class StandIn:
    """What the Solver asks of run/parallel.py's DataParallel, recording each call."""

    is_root, is_worker, reducer = True, True, None

    def __init__(self, window, workers=4):
        self.window, self.num_workers, self.calls = window, workers, []
        self.strategy = Strategy()
        self.shard = (0, workers)

    def start(self, net, iter_size):
        self.calls.append("start")

    def forward_backward(self, net, iteration):
        return net.forward_backward()

    @contextlib.contextmanager
    def step(self, iteration, params, display=False):
        self.calls.append(("step", iteration))
        yield self
        self.calls.append("step done")

    def reduce(self, diff):
        self.calls.append("reduce")
        self.before = diff.copy()
        return self.window

    def publish(self, params):
        self.calls.append("publish")


@pytest.fixture
def param(monkeypatch):
    monkeypatch.chdir(REPO)
    param = io.read_solver(SOLVER)
    param.display = param.test_interval = 0
    param.momentum = param.weight_decay = 0.0
    param.lr_policy = "fixed"
    del param.test_iter[:]
    return param


@pytest.mark.parametrize("window", [slice(None), slice(100, 2000), None], ids=["peer", "server shard", "ps worker"])
def test_the_step_runs_one_way_and_updates_only_the_window_reduce_returned(param, window):
    parallel = StandIn(window)
    solver = Solver(param, parallel=parallel, options=RunOptions(global_batch=256))
    start = solver.net.param_arena.copy()
    solver.step(1)
    assert parallel.calls == ["start", ("step", 0), "reduce", "publish", "step done"]
    changed = solver.net.param_arena != start
    expected = np.zeros_like(changed)
    if window is not None:
        expected[window] = True
        rate = param.base_lr / parallel.num_workers * solver.lr_mult[window]   # SGD, no momentum or decay
        expected_weights = start[window].astype(np.float64) - rate * parallel.before[window]
        np.testing.assert_allclose(solver.net.param_arena[window], expected_weights, rtol=1e-6, atol=1e-8)
    assert not np.any(changed & ~expected)               # nothing outside the window moved
    assert solver.plan.per_rank == 64 and solver.workers == 4


def test_pycaffe_layer_hooks_see_every_layer_in_order(param):
    solver = Solver(param)
    net, seen = solver.net, []
    for name in ("before_forward", "after_forward", "before_backward", "after_backward"):
        getattr(net, name)(lambda i, name=name: seen.append((name, i)))
    net.forward_backward()
    n = len(net.layers)
    forward = [(name, i) for i in range(n) for name in ("before_forward", "after_forward")]
    backward = [(name, i) for i in reversed(range(n)) for name in ("before_backward", "after_backward")]
    assert seen == forward + backward


def test_solver_hooks_bracket_every_iteration_and_an_end_hook_can_stop(param):
    solver, seen = Solver(param), []

    class Stop:
        stop, snapshot = True, False

    solver.hooks.add("iteration_start", lambda i: seen.append(("start", i)))
    solver.add_callback(lambda: seen.append("on_start"), lambda: seen.append("on_gradients"))
    solver.hooks.add("iteration_end", lambda i: Stop() if i == 2 else None)
    solver.step(5)
    assert solver.iter == 2 and isinstance(solver.stopped, Stop)
    assert seen == [("start", 0), "on_start", "on_gradients", ("start", 1), "on_start", "on_gradients"]


def test_the_progress_bar_follows_the_iterations_as_a_hook_only_while_step_runs(param, monkeypatch):
    from firecaffe.solvers import solver as solver_module

    class Bar:
        updates, postfix, closed = 0, None, False

        def update(self, n):
            self.updates += n

        def set_postfix(self, **values):
            self.postfix = values

        def close(self):
            self.closed = True

    bars = []
    monkeypatch.setattr(solver_module, "progress", lambda *args, **kwargs: bars.append(Bar()) or bars[-1])
    solver = Solver(param, options=RunOptions(show_progress=True))
    solver.step(3)
    (bar,) = bars
    assert bar.updates == 3 and bar.closed and float(bar.postfix["loss"]) == pytest.approx(solver.smoothed_loss, 1e-3)
    assert solver.hooks["iteration_end"] == []           # removed when step() returned
    Solver(param, options=RunOptions(show_progress=False)).step(1)
    assert len(bars) == 1                                 # --no-progress: no bar at all
