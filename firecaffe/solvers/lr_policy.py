"""Caffe's learning rate policies (SGDSolver::GetLearningRate), as pure functions of the iteration.

    fixed      base_lr
    step       base_lr * gamma ^ floor(iter / stepsize)
    exp        base_lr * gamma ^ iter
    inv        base_lr * (1 + gamma * iter) ^ (-power)
    multistep  base_lr * gamma ^ (number of stepvalues passed)
    poly       base_lr * (1 - iter / max_iter) ^ power
    sigmoid    base_lr / (1 + exp(-gamma * (iter - stepsize)))

Caffe keeps multistep's position in a counter (``current_step_``) that moves
at most one stepvalue per iteration. Here it is recomputed from the iteration,
so a resumed run gets the same rate without restoring the counter; for a
strictly increasing ``stepvalue`` list, as Caffe expects, the two agree.
"""
import math

from ..errors import FirecaffeError

POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")


def learning_rate(param, iteration):
    """The learning rate Caffe uses for the update made at ``iteration`` (a Python float)."""
    policy = param.lr_policy
    base_lr = param.base_lr
    if policy == "fixed":
        return float(base_lr)
    if policy not in POLICIES:
        shown = repr(policy) if policy else "(none given)"
        raise FirecaffeError(f"solver: unknown lr_policy {shown}; valid policies are {', '.join(POLICIES)}")
    if policy != "poly":
        _check_gamma(param)
    if policy == "step":
        _check_stepsize(param)
        return base_lr * param.gamma ** (iteration // param.stepsize)
    if policy == "exp":
        return base_lr * param.gamma ** iteration
    if policy == "inv":
        return base_lr * (1.0 + param.gamma * iteration) ** (-param.power)
    if policy == "multistep":
        return base_lr * param.gamma ** multistep_position(param.stepvalue, iteration)
    if policy == "poly":
        if param.max_iter <= 0:
            raise FirecaffeError(f"solver: lr_policy \"poly\" needs max_iter > 0, got {param.max_iter}")
        if iteration > param.max_iter:
            raise FirecaffeError(f"solver: lr_policy \"poly\" is undefined past max_iter "
                                 f"({iteration} > {param.max_iter})")
        return base_lr * (1.0 - iteration / param.max_iter) ** param.power
    _check_stepsize(param)  # sigmoid
    return base_lr / (1.0 + math.exp(-param.gamma * (iteration - param.stepsize)))


def current_step(param, iteration):
    """Caffe's ``current_step_`` for a .solverstate: the step index of "step" and "multistep", else 0."""
    if param.lr_policy == "step" and param.stepsize > 0:
        return iteration // param.stepsize
    if param.lr_policy == "multistep":
        return multistep_position(param.stepvalue, iteration)
    return 0


def multistep_position(stepvalues, iteration):
    """How many leading stepvalues ``iteration`` has reached (Caffe's advance-while rule)."""
    position = 0
    while position < len(stepvalues) and iteration >= stepvalues[position]:
        position += 1
    return position


def _check_gamma(param):
    if param.gamma < 0:
        raise FirecaffeError(f"solver: lr_policy \"{param.lr_policy}\" needs gamma >= 0, got {param.gamma}")


def _check_stepsize(param):
    if param.stepsize <= 0:
        raise FirecaffeError(f"solver: lr_policy \"{param.lr_policy}\" needs stepsize > 0, got {param.stepsize}")
