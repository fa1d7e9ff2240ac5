"""Caffe's update rules (SGDSolver::ApplyUpdate and the ComputeUpdateValue of each solver type),
vectorized over flat arrays.

The net keeps every learnable parameter in one flat ``data`` array and every
gradient in one flat ``diff`` array; per-parameter ``lr_mult`` and
``decay_mult`` come as per-element arrays of the same length. ``apply`` runs
Caffe's steps in Caffe's order, as a few whole-array operations:

    clip      if clip_gradients >= 0 and ||diff|| > clip_gradients: diff *= clip_gradients / ||diff||
    normalize diff *= 1 / iter_size                              (when iter_size > 1)
    decay     diff += weight_decay * decay_mult * data           (L2)
              diff += weight_decay * decay_mult * sign(data)     (L1)
    step      diff <- the solver type's step, local_rate = rate * lr_mult, history updated
    update    data -= diff                                       (Blob::Update)

The rule holds no assumption that the arrays span the whole net: a parameter
server applies it to its shard, passing the global squared norm of the gradient
as ``global_sumsq`` when clipping. Arrays may be NumPy or CuPy; the dtype of
``data`` is kept throughout (scratch and history are allocated in it).
"""
import copy

import numpy as np

from ..core import backend
from ..errors import FirecaffeError

REGULARIZATION_TYPES = ("L1", "L2")


class UpdateRule:
    """One solver type's ComputeUpdateValue, plus the steps Caffe runs before and after it.

    ``history`` is the solver state a snapshot saves, one flat array per history
    set, in Caffe's order (Adam: m then v; AdaDelta: squared gradients then
    squared updates).
    """

    type = None
    history_sets = 1
    scratch_arrays = 1

    def __init__(self, param, size, dtype, xp):
        self.param = param
        self.size = int(size)
        self.dtype = dtype = np.dtype(dtype)
        self.xp = xp
        self.history = [xp.zeros(self.size, dtype=dtype) for _ in range(self.history_sets)]
        self._scratch = [xp.empty(self.size, dtype=dtype) for _ in range(self.scratch_arrays)]
        self._check_param()

    # --- Caffe's ApplyUpdate ------------------------------------------------
    def apply(self, data, diff, lr_mult, decay_mult, rate, iteration, global_sumsq=None):
        """Update ``data`` in place from ``diff`` (which ends holding the step taken, as in Caffe)."""
        self._check_arrays(data, diff, lr_mult, decay_mult)
        self.clip(diff, global_sumsq)
        self.normalize(diff)
        self.regularize(data, diff, decay_mult)
        self.compute_update_value(diff, lr_mult, rate, iteration)
        data -= diff

    def clip(self, diff, global_sumsq=None):
        """Scale ``diff`` so that the global L2 norm is at most clip_gradients; returns the factor."""
        clip = self.param.clip_gradients
        if clip < 0:
            return 1.0
        sumsq = grad_sumsq(diff) if global_sumsq is None else float(global_sumsq)
        norm = sumsq ** 0.5
        if norm <= clip:
            return 1.0
        factor = clip / norm
        diff *= self._scalar(factor)
        return factor

    def normalize(self, diff):
        if self.param.iter_size > 1:
            diff *= self._scalar(1.0 / self.param.iter_size)

    def regularize(self, data, diff, decay_mult):
        weight_decay = self.param.weight_decay
        if not weight_decay:
            return
        term = self._scratch[0]
        if self.param.regularization_type == "L2":
            self.xp.multiply(decay_mult, self._scalar(weight_decay), out=term)
            term *= data
        else:  # "L1", checked at construction; multiplying by a sign is exact, so the order is free
            self.xp.sign(data, out=term)
            term *= decay_mult
            term *= self._scalar(weight_decay)
        diff += term

    def compute_update_value(self, diff, lr_mult, rate, iteration):
        raise NotImplementedError

    def window(self, window):
        """This rule over ``window`` of the flat arrays: same type and parameters, history shared (views)."""
        cached = getattr(self, "_windows", {}).get((window.start, window.stop))
        if cached is not None:
            return cached
        rule = copy.copy(self)
        rule.history = [h[window] for h in self.history]
        rule._scratch = [s[window] for s in self._scratch]
        rule.size = rule.history[0].size if rule.history else len(range(*window.indices(self.size)))
        self.__dict__.setdefault("_windows", {})[(window.start, window.stop)] = rule
        return rule

    # --- state for snapshots -------------------------------------------------
    def state(self):
        """The history arrays themselves (live, not copies), in Caffe's order."""
        return list(self.history)

    def load_state(self, arrays):
        """Copy saved history (same count and sizes as ``state()``) into this rule."""
        arrays = list(arrays)
        if len(arrays) != len(self.history):
            raise FirecaffeError(f"solver state: {self.type} keeps {len(self.history)} history "
                                 f"array(s), the saved state has {len(arrays)}; saved by another solver type?")
        for i, (mine, saved) in enumerate(zip(self.history, arrays)):
            size = int(getattr(saved, "size", 0))
            if size != mine.size:
                raise FirecaffeError(f"solver state: history array {i} has {size} values, this "
                                     f"{self.type} rule has {mine.size}; saved from another net?")
        for mine, saved in zip(self.history, arrays):
            mine[...] = self.xp.asarray(saved).reshape(-1)

    # --- helpers -------------------------------------------------------------
    def _local_rate(self, lr_mult, rate, out):
        return self.xp.multiply(lr_mult, self._scalar(rate), out=out)

    def _scalar(self, value):
        return self.dtype.type(value)

    def _check_param(self):
        p = self.param
        if p.weight_decay and p.regularization_type not in REGULARIZATION_TYPES:
            raise FirecaffeError(f"solver: unknown regularization_type {p.regularization_type!r}; "
                                 f"valid types are {', '.join(REGULARIZATION_TYPES)}")

    def _check_arrays(self, data, diff, lr_mult, decay_mult):
        for name, array in (("data", data), ("diff", diff), ("lr_mult", lr_mult), ("decay_mult", decay_mult)):
            if array.size != self.size:
                raise FirecaffeError(f"{self.type} update: {name} has {array.size} values, "
                                     f"the rule was made for {self.size}")


class SGD(UpdateRule):
    """h = momentum * h + local_rate * g; step = h."""
    type = "SGD"

    def compute_update_value(self, diff, lr_mult, rate, iteration):
        (h,) = self.history
        scaled = self._local_rate(lr_mult, rate, self._scratch[0])
        scaled *= diff
        h *= self._scalar(self.param.momentum)
        h += scaled
        diff[...] = h


class Nesterov(UpdateRule):
    """h_new = momentum * h + local_rate * g; step = (1 + momentum) * h_new - momentum * h."""
    type = "Nesterov"

    def compute_update_value(self, diff, lr_mult, rate, iteration):
        (h,) = self.history
        momentum = self._scalar(self.param.momentum)
        scaled = self._local_rate(lr_mult, rate, self._scratch[0])
        scaled *= diff
        diff[...] = h                      # diff now holds the previous history
        h *= momentum
        h += scaled
        diff *= -momentum
        self.xp.multiply(h, self._scalar(1 + self.param.momentum), out=scaled)
        diff += scaled


class AdaGrad(UpdateRule):
    """h += g^2; step = local_rate * g / (sqrt(h) + delta)."""
    type = "AdaGrad"

    def _check_param(self):
        super()._check_param()
        _no_momentum(self.param, self.type)

    def compute_update_value(self, diff, lr_mult, rate, iteration):
        (h,) = self.history
        tmp = self._scratch[0]
        self.xp.multiply(diff, diff, out=tmp)
        h += tmp
        _divide_by_rms(self.xp, diff, h, self._scalar(self.param.delta), tmp)
        diff *= self._local_rate(lr_mult, rate, tmp)


class RMSProp(UpdateRule):
    """h = rms_decay * h + (1 - rms_decay) * g^2; step = local_rate * g / (sqrt(h) + delta)."""
    type = "RMSProp"

    def _check_param(self):
        super()._check_param()
        _no_momentum(self.param, self.type)
        if not 0 <= self.param.rms_decay < 1:
            raise FirecaffeError(f"solver: RMSProp needs 0 <= rms_decay < 1, got {self.param.rms_decay}")

    def compute_update_value(self, diff, lr_mult, rate, iteration):
        (h,) = self.history
        tmp = self._scratch[0]
        decay = self.param.rms_decay
        self.xp.multiply(diff, diff, out=tmp)
        tmp *= self._scalar(1 - decay)
        h *= self._scalar(decay)
        h += tmp
        _divide_by_rms(self.xp, diff, h, self._scalar(self.param.delta), tmp)
        diff *= self._local_rate(lr_mult, rate, tmp)


class AdaDelta(UpdateRule):
    """Caffe's AdaDelta, with momentum as the decay of both running averages:

        h_g = momentum * h_g + (1 - momentum) * g^2
        u   = g * sqrt((h_u + delta) / (h_g + delta))
        h_u = momentum * h_u + (1 - momentum) * u^2
        step = local_rate * u
    """
    type = "AdaDelta"
    history_sets = 2
    scratch_arrays = 2

    def compute_update_value(self, diff, lr_mult, rate, iteration):
        xp = self.xp
        h_grad, h_update = self.history
        tmp, denom = self._scratch
        momentum, keep = self._scalar(self.param.momentum), self._scalar(1 - self.param.momentum)
        delta = self._scalar(self.param.delta)
        xp.multiply(diff, diff, out=tmp)
        tmp *= keep
        h_grad *= momentum
        h_grad += tmp
        xp.add(h_update, delta, out=tmp)
        xp.add(h_grad, delta, out=denom)
        tmp /= denom
        xp.sqrt(tmp, out=tmp)
        diff *= tmp
        xp.multiply(diff, diff, out=tmp)
        tmp *= keep
        h_update *= momentum
        h_update += tmp
        diff *= self._local_rate(lr_mult, rate, tmp)


class Adam(UpdateRule):
    """m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
    step = local_rate * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + delta), t = iteration + 1,
    with b1 = momentum and b2 = momentum2 (delta is added outside the square root, as in Caffe)."""
    type = "Adam"
    history_sets = 2

    def compute_update_value(self, diff, lr_mult, rate, iteration):
        xp = self.xp
        m, v = self.history
        tmp = self._scratch[0]
        beta1, beta2 = self.param.momentum, self.param.momentum2
        t = iteration + 1
        correction = (1.0 - beta2 ** t) ** 0.5 / (1.0 - beta1 ** t)
        xp.multiply(diff, self._scalar(1 - beta1), out=tmp)
        m *= self._scalar(beta1)
        m += tmp
        xp.multiply(diff, diff, out=tmp)
        tmp *= self._scalar(1 - beta2)
        v *= self._scalar(beta2)
        v += tmp
        xp.sqrt(v, out=tmp)
        tmp += self._scalar(self.param.delta)
        xp.divide(m, tmp, out=diff)
        local_rate = self._local_rate(lr_mult, rate, tmp)
        local_rate *= self._scalar(correction)
        diff *= local_rate


RULES = {rule.type: rule for rule in (SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam)}


def make_update_rule(param, size, dtype, xp=None):
    """The UpdateRule for ``param.type`` over flat arrays of ``size`` elements of ``dtype``."""
    rule = RULES.get(param.type)
    if rule is None:
        hint = next((f" (did you mean {name!r}? Caffe's names are case-sensitive)"
                     for name in RULES if name.lower() == param.type.lower()), "")
        raise FirecaffeError(f"solver: unknown solver type {param.type!r}{hint}; "
                             f"valid types are {', '.join(RULES)}")
    return rule(param, size, dtype, backend.xp() if xp is None else xp)


def grad_sumsq(diff):
    """Sum of squares of ``diff`` as a Python float; a sharded caller adds these across shards."""
    xp = backend.xp_of(diff)
    flat = diff.reshape(-1)
    return float(xp.dot(flat, flat))


def _divide_by_rms(xp, diff, h, delta, tmp):
    """diff /= sqrt(h) + delta, using ``tmp`` as scratch."""
    xp.sqrt(h, out=tmp)
    tmp += delta
    diff /= tmp


def _no_momentum(param, type_name):
    if param.momentum != 0:
        raise FirecaffeError(f"solver: momentum cannot be used with {type_name} "
                             f"(got momentum {param.momentum}; remove it or set it to 0)")
