"""pycaffe's solver API: SGDSolver & co., get_solver, net/test_nets, step/solve,
iter, add_callback, snapshot/restore."""
import numpy as np
import pytest

import firecaffe as caffe
from firecaffe.proto import io

SOLVER = "nets/lenet_digits/solver.prototxt"


def solver_file(tmp_path, **changes):
    param = io.read_solver(SOLVER)
    param.snapshot_prefix = str(tmp_path / "lenet")
    param.display = 0
    param.test_initialization = False
    for key, value in changes.items():
        setattr(param, key, value)
    path = tmp_path / "solver.prototxt"
    path.write_text(io.net_to_text(param))
    return str(path)


@pytest.mark.parametrize("cls,type_name", [("SGDSolver", "SGD"), ("NesterovSolver", "Nesterov"),
                                           ("AdaGradSolver", "AdaGrad"), ("RMSPropSolver", "RMSProp"),
                                           ("AdaDeltaSolver", "AdaDelta"), ("AdamSolver", "Adam")])
def test_each_solver_class_uses_its_update_rule(tmp_path, cls, type_name):
    no_momentum = {"momentum": 0.0} if type_name in ("AdaGrad", "RMSProp") else {}   # Caffe refuses it there
    solver = getattr(caffe, cls)(solver_file(tmp_path, **no_momentum))
    assert solver.param.type == type_name
    before = solver.net.params["ip2"][0].data.copy()
    solver.step(1)
    assert solver.iter == 1 and not np.array_equal(before, solver.net.params["ip2"][0].data)


def test_get_solver_reads_the_type_from_the_file(tmp_path):
    solver = caffe.get_solver(solver_file(tmp_path, type="Adam"))
    assert solver.param.type == "Adam"
    assert type(solver) is caffe.AdamSolver


def test_solver_names_are_classes_in_caffes_hierarchy(tmp_path):
    # notebooks check isinstance(solver, caffe.SGDSolver); in Caffe every rule derives from SGDSolver
    solver = caffe.NesterovSolver(solver_file(tmp_path))
    assert isinstance(solver, caffe.NesterovSolver) and isinstance(solver, caffe.SGDSolver)
    assert isinstance(solver, caffe.Solver) and not isinstance(solver, caffe.AdamSolver)
    assert isinstance(caffe.get_solver(solver_file(tmp_path)), caffe.SGDSolver)


def test_share_weights_makes_a_net_read_the_train_nets_weights(tmp_path):
    solver = caffe.SGDSolver(solver_file(tmp_path))
    net = caffe.Net(solver.param.net, caffe.TEST)
    assert not np.array_equal(net.params["ip2"][0].data, solver.net.params["ip2"][0].data)
    solver.share_weights(net)
    solver.step(1)                                             # the shared weights move with training
    np.testing.assert_array_equal(net.params["ip2"][0].data, solver.net.params["ip2"][0].data)
    assert np.shares_memory(net.params["conv1"][0].data, solver.net.params["conv1"][0].data)


def test_net_and_test_nets_share_weights(tmp_path):
    solver = caffe.SGDSolver(solver_file(tmp_path))
    assert solver.net.phase == "TRAIN" and len(solver.test_nets) == 1
    solver.step(2)
    np.testing.assert_array_equal(solver.test_nets[0].params["conv1"][0].data, solver.net.params["conv1"][0].data)
    out = solver.test_nets[0].forward()
    assert set(out) == {"accuracy", "loss"}


def test_callbacks_run_at_start_and_with_gradients_before_the_update(tmp_path):
    solver = caffe.SGDSolver(solver_file(tmp_path))
    events = []

    def on_start():
        events.append(("start", solver.iter))

    def on_gradients():
        weights = solver.net.params["ip2"][0]
        events.append(("gradients", solver.iter, float(np.abs(weights.diff).sum()) > 0))
        events.append(("weights", weights.data.copy()))
    solver.add_callback(on_start, on_gradients)
    solver.step(2)
    assert [e[:2] for e in events if e[0] != "weights"] == [("start", 0), ("gradients", 0), ("start", 1), ("gradients", 1)]
    assert all(e[2] for e in events if e[0] == "gradients")
    seen = [e[1] for e in events if e[0] == "weights"]
    assert not np.array_equal(seen[0], seen[1])              # the update came after the first callback


def test_solve_snapshot_and_restore(tmp_path):
    solver = caffe.SGDSolver(solver_file(tmp_path, max_iter=4, snapshot=0, test_interval=0))
    solver.solve()
    assert solver.iter == 4
    state = solver.snapshot()
    weights = solver.net.params["ip1"][0].data.copy()
    fresh = caffe.SGDSolver(solver_file(tmp_path, max_iter=4))
    fresh.restore(state)
    assert fresh.iter == 4
    np.testing.assert_array_equal(fresh.net.params["ip1"][0].data, weights)
