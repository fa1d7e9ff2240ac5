"""Update rules against a per-parameter float64 reference written from Caffe's formulas."""
import numpy as np
import pytest

from firecaffe.errors import FirecaffeError
from firecaffe.proto import caffe_pb2
from firecaffe.solvers.updates import grad_sumsq, make_update_rule

SIZES = (5, 7)          # two fake parameters laid out back to back in one flat array
LR_MULT = (1.0, 2.0)
DECAY_MULT = (1.0, 0.0)
RATES = (0.1, 0.05, 0.08, 0.02, 0.04)

SETTINGS = {
    "SGD": dict(momentum=0.9),
    "Nesterov": dict(momentum=0.9),
    "AdaGrad": dict(delta=1e-3),
    "RMSProp": dict(rms_decay=0.9, delta=1e-4),
    "AdaDelta": dict(momentum=0.95, delta=1e-4),
    "Adam": dict(momentum=0.9, momentum2=0.999, delta=1e-6),
}


def solver_param(type_name="SGD", **fields):
    param = caffe_pb2.SolverParameter(type=type_name, base_lr=0.1, lr_policy="fixed")
    for key, value in fields.items():
        setattr(param, key, value)
    return param


def per_element(values):
    return np.concatenate([np.full(n, v) for n, v in zip(SIZES, values)])


def split(flat):
    return np.split(flat, np.cumsum(SIZES)[:-1])


# --- the reference: one parameter at a time, float64, written straight from the formulas ---

def reference_step(p, weights, grads, history, rate, iteration):
    """One Caffe ApplyUpdate over a list of parameters; returns new weights (history updated in place)."""
    grads = [g.copy() for g in grads]
    if p.clip_gradients >= 0:
        norm = np.sqrt(sum(np.sum(g * g) for g in grads))
        if norm > p.clip_gradients:
            grads = [g * (p.clip_gradients / norm) for g in grads]
    new_weights = []
    for i, (w, g) in enumerate(zip(weights, grads)):
        g = g / p.iter_size
        decay = p.weight_decay * DECAY_MULT[i]
        g = g + decay * (w if p.regularization_type == "L2" else np.sign(w))
        lr = rate * LR_MULT[i]
        h = history[i]
        if p.type == "SGD":
            h[0] = p.momentum * h[0] + lr * g
            step = h[0]
        elif p.type == "Nesterov":
            previous = h[0]
            h[0] = p.momentum * h[0] + lr * g
            step = (1 + p.momentum) * h[0] - p.momentum * previous
        elif p.type == "AdaGrad":
            h[0] = h[0] + g ** 2
            step = lr * g / (np.sqrt(h[0]) + p.delta)
        elif p.type == "RMSProp":
            h[0] = p.rms_decay * h[0] + (1 - p.rms_decay) * g ** 2
            step = lr * g / (np.sqrt(h[0]) + p.delta)
        elif p.type == "AdaDelta":
            h[0] = p.momentum * h[0] + (1 - p.momentum) * g ** 2
            u = g * np.sqrt((h[1] + p.delta) / (h[0] + p.delta))
            h[1] = p.momentum * h[1] + (1 - p.momentum) * u ** 2
            step = lr * u
        elif p.type == "Adam":
            t = iteration + 1
            h[0] = p.momentum * h[0] + (1 - p.momentum) * g
            h[1] = p.momentum2 * h[1] + (1 - p.momentum2) * g ** 2
            correction = np.sqrt(1 - p.momentum2 ** t) / (1 - p.momentum ** t)
            step = lr * correction * h[0] / (np.sqrt(h[1]) + p.delta)
        new_weights.append(w - step)
    return new_weights


def reference_history(p):
    sets = 2 if p.type in ("AdaDelta", "Adam") else 1
    return [[np.zeros(n) for _ in range(sets)] for n in SIZES]


def problem(steps, seed=0, grad_scale=1.0):
    gen = np.random.default_rng(seed)
    weights = gen.normal(size=sum(SIZES))
    grads = [grad_scale * gen.normal(size=sum(SIZES)) for _ in range(steps)]
    return weights, grads


def run_both(p, steps=4, dtype=np.float64, grad_scale=1.0):
    """Run the rule and the reference side by side; returns (rule, data, reference weights, ref history)."""
    weights, grads = problem(steps, grad_scale=grad_scale)
    rule = make_update_rule(p, weights.size, dtype, np)
    data = weights.astype(dtype)
    lr_mult, decay_mult = per_element(LR_MULT).astype(dtype), per_element(DECAY_MULT).astype(dtype)
    ref_w, ref_h = split(weights), reference_history(p)
    for it in range(steps):
        rule.apply(data, grads[it].astype(dtype), lr_mult, decay_mult, RATES[it], it)
        ref_w = reference_step(p, ref_w, split(grads[it]), ref_h, RATES[it], it)
        np.testing.assert_allclose(data, np.concatenate(ref_w), rtol=1e-10 if dtype == np.float64 else 1e-4,
                                   atol=1e-12 if dtype == np.float64 else 1e-5, err_msg=f"iteration {it}")
    return rule, data, ref_w, ref_h


@pytest.mark.parametrize("type_name", list(SETTINGS))
def test_each_solver_type_matches_reference_with_l2_decay(type_name):
    p = solver_param(type_name, weight_decay=0.01, **SETTINGS[type_name])
    rule, _, _, ref_h = run_both(p, steps=5)
    for s, flat in enumerate(rule.history):
        np.testing.assert_allclose(flat, np.concatenate([h[s] for h in ref_h]), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("type_name", list(SETTINGS))
def test_each_solver_type_matches_reference_with_l1_decay(type_name):
    run_both(solver_param(type_name, weight_decay=0.05, regularization_type="L1", **SETTINGS[type_name]))


@pytest.mark.parametrize("type_name", list(SETTINGS))
def test_float32_runs_keep_dtype_and_track_reference(type_name):
    p = solver_param(type_name, weight_decay=0.01, **SETTINGS[type_name])
    rule, data, _, _ = run_both(p, dtype=np.float32)
    assert data.dtype == np.float32
    assert all(h.dtype == np.float32 for h in rule.history)


@pytest.mark.parametrize("type_name", ["SGD", "Adam"])
def test_clipping_active_matches_reference(type_name):
    p = solver_param(type_name, clip_gradients=0.5, weight_decay=0.01, **SETTINGS[type_name])
    run_both(p, grad_scale=3.0)


def test_clipping_scales_gradient_to_the_threshold():
    p = solver_param("SGD", clip_gradients=2.0)
    g = np.array([3.0, 4.0, 0.0, 0.0, 0.0, 12.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])  # norm 13
    rule = make_update_rule(p, g.size, np.float64, np)
    data, diff = np.zeros(g.size), g.copy()
    rule.apply(data, diff, np.ones(g.size), np.ones(g.size), 1.0, 0)
    np.testing.assert_allclose(diff, g * 2.0 / 13.0)
    np.testing.assert_allclose(np.linalg.norm(data), 2.0)


def test_clipping_inactive_below_threshold_and_when_negative():
    g = np.array([3.0, 4.0])
    for clip in (5.0, 100.0, -1.0):
        rule = make_update_rule(solver_param("SGD", clip_gradients=clip), 2, np.float64, np)
        diff = g.copy()
        rule.apply(np.zeros(2), diff, np.ones(2), np.zeros(2), 1.0, 0)
        np.testing.assert_array_equal(diff, g)


def test_iter_size_divides_accumulated_gradient():
    p = solver_param("SGD", iter_size=4)
    rule = make_update_rule(p, 3, np.float64, np)
    data, diff = np.ones(3), np.array([4.0, 8.0, -2.0])
    rule.apply(data, diff, np.ones(3), np.zeros(3), 0.5, 0)
    np.testing.assert_allclose(data, [0.5, 0.0, 1.25])


def test_iter_size_matches_reference_over_steps():
    run_both(solver_param("Nesterov", iter_size=3, weight_decay=0.01, clip_gradients=4.0, momentum=0.9))


def test_diff_ends_holding_the_step_taken():
    p = solver_param("Adam", **SETTINGS["Adam"])
    weights, (g,) = problem(1)
    rule = make_update_rule(p, weights.size, np.float64, np)
    data, diff = weights.copy(), g.copy()
    rule.apply(data, diff, per_element(LR_MULT), per_element(DECAY_MULT), 0.1, 0)
    np.testing.assert_allclose(weights - data, diff, rtol=1e-12)


@pytest.mark.parametrize("type_name", list(SETTINGS))
def test_halves_give_the_same_update_as_the_whole(type_name):
    p = solver_param(type_name, weight_decay=0.01, clip_gradients=1.0, iter_size=2, **SETTINGS[type_name])
    weights, grads = problem(3, grad_scale=2.0)
    n, cut = weights.size, 4  # the cut falls inside the first parameter
    lr_mult, decay_mult = per_element(LR_MULT), per_element(DECAY_MULT)
    whole = make_update_rule(p, n, np.float64, np)
    halves = [make_update_rule(p, cut, np.float64, np), make_update_rule(p, n - cut, np.float64, np)]
    data_whole, data_halves = weights.copy(), weights.copy()
    for it, g in enumerate(grads):
        whole.apply(data_whole, g.copy(), lr_mult, decay_mult, RATES[it], it)
        diff = g.copy()
        parts = [slice(0, cut), slice(cut, n)]
        total = sum(grad_sumsq(diff[s]) for s in parts)
        for rule, s in zip(halves, parts):
            rule.apply(data_halves[s], diff[s], lr_mult[s], decay_mult[s], RATES[it], it, global_sumsq=total)
        np.testing.assert_allclose(data_halves, data_whole, rtol=1e-13, atol=1e-15)
    for s, flat in enumerate(whole.history):
        np.testing.assert_allclose(np.concatenate([r.history[s] for r in halves]), flat, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("type_name", list(SETTINGS))
def test_windows_of_one_rule_update_like_the_whole_and_share_its_history(type_name):
    # A parameter server applies the Solver's own rule to its shard: rule.window(shard).
    p = solver_param(type_name, weight_decay=0.01, clip_gradients=1.0, **SETTINGS[type_name])
    weights, grads = problem(3, grad_scale=2.0)
    n, cut = weights.size, 4
    lr_mult, decay_mult = per_element(LR_MULT), per_element(DECAY_MULT)
    whole, sharded = make_update_rule(p, n, np.float64, np), make_update_rule(p, n, np.float64, np)
    data_whole, data_sharded = weights.copy(), weights.copy()
    parts = [slice(0, cut), slice(cut, n)]
    for it, g in enumerate(grads):
        whole.apply(data_whole, g.copy(), lr_mult, decay_mult, RATES[it], it)
        diff = g.copy()
        total = sum(grad_sumsq(diff[s]) for s in parts)
        for s in parts:
            assert sharded.window(s) is sharded.window(s)           # made once, reused every step
            sharded.window(s).apply(data_sharded[s], diff[s], lr_mult[s], decay_mult[s], RATES[it], it,
                                    global_sumsq=total)
        np.testing.assert_allclose(data_sharded, data_whole, rtol=1e-13, atol=1e-15)
    for mine, reference in zip(sharded.state(), whole.state()):     # the windows wrote the rule's own history
        np.testing.assert_allclose(mine, reference, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("type_name", list(SETTINGS))
def test_state_round_trip_resumes_exactly(type_name):
    p = solver_param(type_name, weight_decay=0.01, **SETTINGS[type_name])
    weights, grads = problem(4)
    ones, lr_mult = np.ones(weights.size), per_element(LR_MULT)
    first = make_update_rule(p, weights.size, np.float64, np)
    data = weights.copy()
    for it in range(2):
        first.apply(data, grads[it].copy(), lr_mult, ones, RATES[it], it)
    saved = [h.copy() for h in first.state()]
    assert len(saved) == (2 if type_name in ("AdaDelta", "Adam") else 1)
    second = make_update_rule(p, weights.size, np.float64, np)
    second.load_state(saved)
    resumed = data.copy()
    for it in range(2, 4):
        first.apply(data, grads[it].copy(), lr_mult, ones, RATES[it], it)
        second.apply(resumed, grads[it].copy(), lr_mult, ones, RATES[it], it)
    np.testing.assert_array_equal(resumed, data)


def test_grad_sumsq_is_the_squared_norm():
    assert grad_sumsq(np.array([3.0, 4.0], dtype=np.float32)) == pytest.approx(25.0)


# --- errors ---

def test_unknown_solver_type_names_valid_ones():
    with pytest.raises(FirecaffeError, match="'Adamax'.*SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam"):
        make_update_rule(solver_param("Adamax"), 3, np.float32, np)


def test_solver_type_case_mistake_gets_a_hint():
    with pytest.raises(FirecaffeError, match="did you mean 'AdaGrad'"):
        make_update_rule(solver_param("adagrad"), 3, np.float32, np)


def test_unknown_regularization_type():
    with pytest.raises(FirecaffeError, match="regularization_type 'L3'.*L1, L2"):
        make_update_rule(solver_param("SGD", weight_decay=0.1, regularization_type="L3"), 3, np.float32, np)


@pytest.mark.parametrize("type_name", ["AdaGrad", "RMSProp"])
def test_momentum_is_refused_where_caffe_refuses_it(type_name):
    with pytest.raises(FirecaffeError, match=f"momentum cannot be used with {type_name}"):
        make_update_rule(solver_param(type_name, momentum=0.9), 3, np.float32, np)


@pytest.mark.parametrize("decay", [1.0, -0.1])
def test_rms_decay_must_lie_in_zero_one(decay):
    with pytest.raises(FirecaffeError, match="rms_decay"):
        make_update_rule(solver_param("RMSProp", rms_decay=decay), 3, np.float32, np)


def test_array_size_mismatch_is_reported():
    rule = make_update_rule(solver_param("SGD"), 3, np.float64, np)
    with pytest.raises(FirecaffeError, match="diff has 4 values, the rule was made for 3"):
        rule.apply(np.zeros(3), np.zeros(4), np.ones(3), np.ones(3), 0.1, 0)


def test_load_state_checks_count_and_size():
    rule = make_update_rule(solver_param("Adam"), 3, np.float64, np)
    with pytest.raises(FirecaffeError, match="keeps 2 history"):
        rule.load_state([np.zeros(3)])
    with pytest.raises(FirecaffeError, match="history array 1 has 4 values"):
        rule.load_state([np.zeros(3), np.zeros(4)])
