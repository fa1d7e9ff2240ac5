"""Solver loop on the shipped lenet_digits net: exact resume, iter_size, logs, errors."""
import os

import numpy as np
import pytest
from google.protobuf import text_format

from firecaffe.errors import FirecaffeError
from firecaffe.proto import caffe_pb2, io
from firecaffe.solvers import Solver, get_solver

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOLVER = os.path.join(REPO, "nets", "lenet_digits", "solver.prototxt")


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


def solver_param(tmp_path, **fields):
    param = io.read_solver(SOLVER)
    param.snapshot_prefix = str(tmp_path / "lenet")
    param.display = 0
    param.test_interval = 0
    param.snapshot_after_train = False
    for key, value in fields.items():
        setattr(param, key, value)
    return param


@pytest.mark.parametrize("fmt", ["BINARYPROTO", "HDF5"])
@pytest.mark.parametrize("kind", ["SGD", "Adam"])
def test_resume_from_snapshot_is_bit_exact(tmp_path, fmt, kind):
    fields = dict(max_iter=8, type=kind, snapshot_format=getattr(caffe_pb2.SolverParameter, fmt))
    straight = Solver(solver_param(tmp_path, **fields))
    straight.step(8)

    first = Solver(solver_param(tmp_path, **fields))
    first.step(4)
    state = first.snapshot()
    assert os.path.exists(state)
    resumed = Solver(solver_param(tmp_path, **fields))
    resumed.restore(state)
    assert resumed.iter == 4
    resumed.step(4)
    np.testing.assert_array_equal(resumed.net.param_arena, straight.net.param_arena)
    for a, b in zip(resumed.rule.state(), straight.rule.state()):
        np.testing.assert_array_equal(a, b)


def _with_batch(batch):
    def hook(net_param):
        for layer in net_param.layer:
            if layer.type == "HDF5Data":
                layer.hdf5_data_param.batch_size = batch
    return hook


def test_iter_size_accumulates_like_a_bigger_batch(tmp_path):
    big = Solver(solver_param(tmp_path, max_iter=3), train_net_hook=_with_batch(64))
    small = Solver(solver_param(tmp_path, max_iter=3, iter_size=2), train_net_hook=_with_batch(32))
    big.step(3)
    small.step(3)
    np.testing.assert_allclose(small.net.param_arena, big.net.param_arena, rtol=1e-4, atol=1e-6)


def test_training_reaches_high_test_accuracy(tmp_path):
    solver = get_solver(SOLVER)
    solver.param.snapshot_after_train = False
    solver.param.display = 0
    solver.step(solver.param.max_iter)
    scores = solver.test(0)
    assert scores["accuracy"][0] >= 0.95


def test_nan_loss_stops_with_the_iteration_named(tmp_path):
    solver = Solver(solver_param(tmp_path, max_iter=50, base_lr=1e6))
    with pytest.raises(FirecaffeError, match=r"Iteration \d+: the loss is nan"):
        solver.step(50)


def test_solver_without_net_is_refused(tmp_path):
    param = text_format.Parse("base_lr: 0.1 max_iter: 10", caffe_pb2.SolverParameter())
    with pytest.raises(FirecaffeError, match="no net given"):
        Solver(param)


def test_negative_max_iter_is_refused(tmp_path):
    with pytest.raises(FirecaffeError, match="max_iter"):
        Solver(solver_param(tmp_path, max_iter=-5))


def test_snapshot_of_another_net_is_refused(tmp_path):
    solver = Solver(solver_param(tmp_path, max_iter=2))
    other = tmp_path / "other.solverstate"
    state = caffe_pb2.SolverState(iter=3)
    blob = state.history.add()
    blob.shape.dim.append(2)
    blob.data.extend([1.0, 2.0])
    other.write_bytes(state.SerializeToString())
    with pytest.raises(FirecaffeError, match="history blobs"):
        solver.restore(str(other))


def test_truncated_snapshot_is_refused(tmp_path):
    solver = Solver(solver_param(tmp_path, max_iter=2))
    solver.step(2)
    state = solver.snapshot()
    data = open(state, "rb").read()
    broken = tmp_path / "broken.solverstate"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(FirecaffeError, match="broken.solverstate"):
        Solver(solver_param(tmp_path, max_iter=2)).restore(str(broken))


def test_training_ends_with_caffes_line_then_time_throughput_and_the_last_snapshot(tmp_path):
    from firecaffe.engine.testing import logged
    with logged() as records:
        solver = Solver(solver_param(tmp_path, max_iter=3, snapshot_after_train=True))
        solver.solve()
    done = records.index("Optimization Done.")
    summary = records[done + 1]
    assert summary.startswith("Trained 3 iteration(s) in ") and " iter/s, " in summary, summary
    assert summary.endswith(f"samples/s); last snapshot {tmp_path / 'lenet'}_iter_3.solverstate"), summary
