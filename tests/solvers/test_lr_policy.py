"""Learning rate policies against Caffe's formulas."""
import math

import pytest

from firecaffe.errors import FirecaffeError
from firecaffe.proto import caffe_pb2
from firecaffe.solvers.lr_policy import current_step, learning_rate

ITERS = (0, 1, 99, 100, 101, 250, 999)


def param(policy, **fields):
    p = caffe_pb2.SolverParameter(lr_policy=policy, base_lr=0.01, gamma=0.5, power=0.75,
                                  stepsize=100, max_iter=1000)
    for key, value in fields.items():
        setattr(p, key, value)
    return p


@pytest.mark.parametrize("it", ITERS)
def test_fixed(it):
    assert learning_rate(param("fixed"), it) == pytest.approx(0.01)


@pytest.mark.parametrize("it,expected_steps", [(0, 0), (99, 0), (100, 1), (199, 1), (200, 2), (999, 9)])
def test_step_floors_iteration_over_stepsize(it, expected_steps):
    p = param("step")
    assert learning_rate(p, it) == pytest.approx(p.base_lr * p.gamma ** expected_steps)
    assert current_step(p, it) == expected_steps


@pytest.mark.parametrize("it", ITERS)
def test_exp(it):
    p = param("exp", gamma=0.999)
    assert learning_rate(p, it) == pytest.approx(p.base_lr * p.gamma ** it)


@pytest.mark.parametrize("it", ITERS)
def test_inv(it):
    p = param("inv", gamma=1e-4)
    assert learning_rate(p, it) == pytest.approx(p.base_lr * (1 + p.gamma * it) ** -p.power)


@pytest.mark.parametrize("it", ITERS + (1000,))
def test_poly_reaches_zero_at_max_iter(it):
    p = param("poly", power=2.0)
    assert learning_rate(p, it) == pytest.approx(p.base_lr * (1 - it / 1000) ** 2)


@pytest.mark.parametrize("it", ITERS)
def test_sigmoid(it):
    p = param("sigmoid", gamma=0.05)
    assert learning_rate(p, it) == pytest.approx(p.base_lr / (1 + math.exp(-p.gamma * (it - 100))))


@pytest.mark.parametrize("it,steps", [(0, 0), (99, 0), (100, 1), (101, 1), (299, 1), (300, 2),
                                      (301, 2), (700, 3), (5000, 3)])
def test_multistep_boundaries(it, steps):
    p = param("multistep")
    p.stepvalue.extend([100, 300, 700])
    assert learning_rate(p, it) == pytest.approx(0.01 * 0.5 ** steps)
    assert current_step(p, it) == steps


def test_multistep_matches_caffes_stateful_counter_every_iteration():
    p = param("multistep")
    p.stepvalue.extend([3, 10, 11, 40])
    step = 0
    for it in range(60):
        if step < len(p.stepvalue) and it >= p.stepvalue[step]:
            step += 1
        assert learning_rate(p, it) == pytest.approx(p.base_lr * p.gamma ** step), it


def test_multistep_resumes_without_history():
    p = param("multistep")
    p.stepvalue.extend([100, 300])
    assert learning_rate(p, 350) == pytest.approx(0.01 * 0.25)


@pytest.mark.parametrize("policy", ["Step", "cosine", ""])
def test_unknown_policy_names_the_valid_ones(policy):
    with pytest.raises(FirecaffeError, match="unknown lr_policy.*fixed, step, exp, inv, multistep, poly, sigmoid"):
        learning_rate(param(policy), 5)


@pytest.mark.parametrize("policy", ["step", "sigmoid"])
def test_stepsize_must_be_positive(policy):
    with pytest.raises(FirecaffeError, match="stepsize > 0"):
        learning_rate(param(policy, stepsize=0), 5)


def test_negative_gamma_is_refused():
    with pytest.raises(FirecaffeError, match="gamma >= 0"):
        learning_rate(param("exp", gamma=-0.1), 5)


def test_poly_needs_max_iter():
    with pytest.raises(FirecaffeError, match="max_iter > 0"):
        learning_rate(param("poly", max_iter=0), 5)
