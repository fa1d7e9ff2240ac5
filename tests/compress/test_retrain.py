"""Retraining under Deep Compression's constraints, as observers of the Solver's step: a pruned
weight stays exactly 0.0 through every solver type with weight decay and momentum, through a
snapshot and an exact resume; shared weights move as one, by the sum of their gradients."""
import os

import numpy as np
import pytest

from firecaffe.compress import pipeline, prune, retrain
from firecaffe.proto import io
from firecaffe.solvers import Solver

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOLVER = os.path.join(REPO, "nets", "lenet_digits", "solver.prototxt")
TYPES = ["SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam"]


def make_solver(monkeypatch, tmp_path, **fields):
    monkeypatch.chdir(REPO)
    param = io.read_solver(SOLVER)
    param.display = param.test_interval = 0
    param.snapshot_prefix = str(tmp_path / "snap")
    param.weight_decay = 0.01
    for key, value in fields.items():
        setattr(param, key, value)
    if param.type in ("AdaGrad", "RMSProp", "AdaDelta"):
        param.momentum = 0.95 if param.type == "AdaDelta" else 0.0
        param.rms_decay = 0.98
    if param.type == "Adam":
        param.momentum2 = 0.999
    return Solver(param, path=SOLVER, quiet=True)


def masks_for(solver):
    weights = pipeline.Weights.of_net(solver.net)
    return {name: prune.mask_by_density(weights.weight(name), 0.3) for name in ("conv2", "ip1")}


@pytest.mark.parametrize("kind", TYPES)
def test_pruned_weights_stay_exactly_zero_with_every_rule(monkeypatch, tmp_path, kind):
    solver = make_solver(monkeypatch, tmp_path, type=kind, base_lr=0.01)
    solver.step(3)                       # history holds momentum for every weight before pruning
    masks = masks_for(solver)
    observer = retrain.Masks(solver, masks).attach()
    before = {name: solver.net.params[name][0].data.copy() for name in masks}
    solver.step(4)
    for name, mask in masks.items():
        data = solver.net.params[name][0].data
        assert np.all(data[~mask] == 0), f"{kind}: pruned weights of {name} moved"
        assert np.any(data[mask] != before[name][mask]), f"{kind}: kept weights of {name} did not train"
    observer.detach()


def test_masks_survive_a_snapshot_and_an_exact_resume(monkeypatch, tmp_path):
    solver = make_solver(monkeypatch, tmp_path, type="Adam", base_lr=0.01)
    masks = masks_for(solver)
    retrain.Masks(solver, masks).attach()
    solver.step(2)
    state = solver.snapshot()
    solver.step(3)
    straight = solver.net.param_arena.copy()
    resumed = make_solver(monkeypatch, tmp_path, type="Adam", base_lr=0.01)
    resumed.restore(state)
    saved = pipeline.Weights.of_net(resumed.net)
    for name, mask in masks.items():
        assert np.all(saved.weight(name)[~mask] == 0)       # the snapshot holds the zeros
    again = {name: saved.weight(name) != 0 for name in masks}   # masks found again from the weights
    retrain.Masks(resumed, again).attach()
    resumed.step(3)
    np.testing.assert_array_equal(resumed.net.param_arena, straight)


def test_masks_act_on_a_parameter_servers_window_only(monkeypatch, tmp_path):
    solver = make_solver(monkeypatch, tmp_path)
    masks = masks_for(solver)
    observer = retrain.Masks(solver, masks)
    solver.net.diff_arena[...] = 1.0
    half = slice(0, solver.net.diff_arena.size // 2)
    observer._on_reduced(0, half, None)
    assert np.all(solver.net.diff_arena[half.stop:] == 1.0)
    np.testing.assert_array_equal(solver.net.diff_arena[half], observer.mask[half])


def test_shared_weights_move_by_the_sum_of_their_gradients(monkeypatch, tmp_path):
    solver = make_solver(monkeypatch, tmp_path, momentum=0.0, weight_decay=0.0, base_lr=0.05, lr_policy="fixed")
    weights = pipeline.Weights.of_net(solver.net)
    from firecaffe.compress.spec import Plan
    plan = Plan(weights.kinds(), density_text="ip1:0.3", bits_text="ip1:3,conv*:4,ip2:2")
    masks = pipeline.prune_step(weights, plan)
    shared = pipeline.full_codes(pipeline.quantize_step(weights, plan), weights)
    weights.into(solver.net)
    retrain.Masks(solver, masks).attach()
    retrain.SharedWeights(solver, shared).attach()
    seen = {}
    solver.hooks.add("reduced", lambda it, window, sum_across: seen.setdefault("diff", solver.net.diff_arena.copy()),
                     first=True)
    blob = solver.net.params["ip1"][0]
    offset = retrain._place(solver.net, "ip1")[0]
    before = blob.data.copy()
    solver.step(1)
    codebook, codes = shared["ip1"]
    grads = seen["diff"][offset:offset + blob.count]
    after = blob.data.reshape(-1)
    for k in range(len(codebook)):
        members = codes == k
        if not members.any():
            continue
        expected = np.float32(codebook[k]) - np.float32(0.05) * np.float32(grads[members].sum(dtype=np.float64))
        np.testing.assert_allclose(after[members], expected, rtol=1e-5, atol=1e-7)
        assert np.unique(after[members]).size == 1           # still one shared value
    assert np.all(after[codes == len(codebook)] == 0)
    assert np.all(before.reshape(-1)[codes == len(codebook)] == 0)
    solver.step(5)
    for name, (codebook, codes) in shared.items():
        values = solver.net.params[name][0].data.reshape(-1)
        assert np.unique(values[codes < len(codebook)]).size <= len(codebook)
        for k in np.unique(codes):
            assert np.unique(values[codes == k]).size == 1
