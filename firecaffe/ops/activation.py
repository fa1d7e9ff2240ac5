"""More element-wise neuron layers: ELU, Swish, Clip, AbsVal, BNLL, Exp, Log,
Power, Threshold, PReLU.

Caffe types and parameters (y = f(x), element-wise):
  ELU        elu_param { alpha (1) }        y = x > 0 ? x : alpha (exp(x) - 1)
  Swish      swish_param { beta (1) }       y = x sigmoid(beta x)
  Clip       clip_param { min, max }        y = min(max(x, min), max); dy passes where min <= x <= max
  AbsVal     (none)                         y = |x|; never in place (Caffe refuses it too)
  BNLL       (none)                         y = log(1 + exp(x))
  Exp        exp_param { base (-1 = e), scale (1), shift (0) }   y = base^(shift + scale x)
  Log        log_param { base (-1 = e), scale (1), shift (0) }   y = log_base(shift + scale x)
  Power      power_param { power (1), scale (1), shift (0) }     y = (shift + scale x)^power
  Threshold  threshold_param { threshold (0) }                   y = x > threshold ? 1 : 0; no backward
  PReLU      prelu_param { filler (constant 0.25), channel_shared (false) }
             y = x > 0 ? x : a_c x, one learnable slope per channel (axis 1), or one 0-D slope

Every layer here runs unchanged on NumPy and CuPy arrays. Backward passes use
what Caffe's use (the output for ELU, Swish, Exp; the input elsewhere), so they
agree with Caffe where a formula has more than one floating-point form.
"""
import math

import numpy as np

from ..core import backend
from ..errors import PrototxtError
from . import register
from .base import Layer

BNLL_THRESHOLD = 50.0      # Caffe caps x at 50 before exp in BNLL's backward


class _Elementwise(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def reshape(self, bottom, top):
        top[0].reshape_like(bottom[0])

    def flops(self, bottom, top):
        return bottom[0].count


@register("ELU")
class ELU(_Elementwise):
    def layer_setup(self, bottom, top):
        self.alpha = float(self.param.elu_param.alpha)

    def forward_cpu(self, bottom, top):
        x = bottom[0].data
        xp = backend.xp_of(x)
        top[0].data[...] = xp.maximum(x, 0) + self.alpha * (xp.exp(xp.minimum(x, 0)) - 1)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            x, y, dy = bottom[0].data, top[0].data, top[0].diff   # x is y when in place
            bottom[0].diff[...] = dy * ((x > 0) + (self.alpha + y) * (x <= 0))


@register("Swish")
class Swish(_Elementwise):
    def layer_setup(self, bottom, top):
        self.beta = float(self.param.swish_param.beta)

    def forward_cpu(self, bottom, top):
        x = bottom[0].data
        xp = backend.xp_of(x)
        self.sigmoid = 0.5 * xp.tanh(x * (0.5 * self.beta)) + 0.5
        top[0].data[...] = x * self.sigmoid

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y, s = top[0].data, self.sigmoid
            bottom[0].diff[...] = top[0].diff * (self.beta * y + s * (1 - self.beta * y))


@register("Clip")
class Clip(_Elementwise):
    def layer_setup(self, bottom, top):
        p = self.param.clip_param
        if not (p.HasField("min") and p.HasField("max")):
            self.fail("clip_param needs both min and max", PrototxtError)
        self.low, self.high = float(p.min), float(p.max)

    def forward_cpu(self, bottom, top):
        x = bottom[0].data
        xp = backend.xp_of(x)
        top[0].data[...] = xp.maximum(self.low, xp.minimum(x, self.high))

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            x = bottom[0].data
            bottom[0].diff[...] = top[0].diff * ((x >= self.low) & (x <= self.high))


@register("AbsVal")
class AbsVal(_Elementwise):
    def layer_setup(self, bottom, top):
        if top[0] is bottom[0]:
            self.fail("cannot run in place (its backward needs the sign of the input)", PrototxtError)

    def forward_cpu(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        xp.abs(bottom[0].data, out=top[0].data)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            xp = backend.xp_of(top[0].diff)
            bottom[0].diff[...] = xp.sign(bottom[0].data) * top[0].diff


@register("BNLL")
class BNLL(_Elementwise):
    def forward_cpu(self, bottom, top):
        x = bottom[0].data
        xp = backend.xp_of(x)
        top[0].data[...] = xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            xp = backend.xp_of(top[0].diff)
            e = xp.exp(xp.minimum(bottom[0].data, BNLL_THRESHOLD))
            bottom[0].diff[...] = top[0].diff * e / (e + 1)


def _log_of_base(layer, base):
    """log(base), with Caffe's convention that base -1 means e."""
    if base == -1:
        return 1.0
    if not base > 0:
        layer.fail(f"base must be strictly positive (or -1 for e), got {base:g}", PrototxtError)
    value = math.log(base)
    if value == 0:
        layer.fail("base 1 has no logarithm to divide by", PrototxtError)
    return value


@register("Exp")
class Exp(_Elementwise):
    def layer_setup(self, bottom, top):
        p = self.param.exp_param
        base = float(p.base)
        if base != -1 and not base > 0:
            self.fail(f"base must be strictly positive (or -1 for e), got {base:g}", PrototxtError)
        log_base = 1.0 if base == -1 else math.log(base)
        self.inner = log_base * float(p.scale)
        self.outer = math.exp(log_base * float(p.shift)) if p.shift != 0 else 1.0

    def forward_cpu(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        y = xp.exp(bottom[0].data * self.inner if self.inner != 1 else bottom[0].data)
        top[0].data[...] = y * self.outer if self.outer != 1 else y

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            g = top[0].data * top[0].diff
            bottom[0].diff[...] = g * self.inner if self.inner != 1 else g


@register("Log")
class Log(_Elementwise):
    def layer_setup(self, bottom, top):
        p = self.param.log_param
        log_base = _log_of_base(self, float(p.base))
        self.scale, self.shift = float(p.scale), float(p.shift)
        self.base_scale = 1.0 / log_base
        self.backward_scale = self.scale / log_base

    def _argument(self, x):
        if self.scale != 1:
            x = x * self.scale
        return x + self.shift if self.shift != 0 else x

    def forward_cpu(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        y = xp.log(self._argument(bottom[0].data))
        top[0].data[...] = y * self.base_scale if self.base_scale != 1 else y

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            inverse = 1 / self._argument(bottom[0].data)
            if self.backward_scale != 1:
                inverse = inverse * self.backward_scale
            bottom[0].diff[...] = top[0].diff * inverse


@register("Power")
class Power(_Elementwise):
    """The backward pass takes Caffe's forms: a constant for power 1, a linear
    function for power 2, power * y / x without shift, else
    power * scale * y / (shift + scale x) (so a zero base gives what Caffe gives)."""

    def layer_setup(self, bottom, top):
        p = self.param.power_param
        self.power, self.scale, self.shift = float(p.power), float(p.scale), float(p.shift)
        self.diff_scale = self.power * self.scale

    def _base(self, x):
        if self.scale != 1:
            x = x * self.scale
        return x + self.shift if self.shift != 0 else x

    def forward_cpu(self, bottom, top):
        if self.diff_scale == 0:
            top[0].data[...] = 1.0 if self.power == 0 else self.shift ** self.power
            return
        xp = backend.xp_of(bottom[0].data)
        base = self._base(bottom[0].data)
        top[0].data[...] = xp.power(base, base.dtype.type(self.power)) if self.power != 1 else base

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].diff
        if self.diff_scale == 0:
            dx[...] = 0
            return
        x, y, dy = bottom[0].data, top[0].data, top[0].diff
        if self.power == 1:
            dx[...] = dy * self.diff_scale
        elif self.power == 2:
            dx[...] = dy * (x * (self.diff_scale * self.scale) + self.diff_scale * self.shift)
        elif self.shift == 0:
            dx[...] = dy * (y / x * self.power)
        else:
            dx[...] = dy * (y / self._base(x) * self.diff_scale)


@register("Threshold")
class Threshold(_Elementwise):
    def layer_setup(self, bottom, top):
        self.threshold = float(self.param.threshold_param.threshold)

    def forward_cpu(self, bottom, top):
        top[0].data[...] = bottom[0].data > self.threshold

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            self.fail("has no backward pass (a step function); set propagate_down: false "
                      "or do not use force_backward", PrototxtError)

    def allow_force_backward(self, bottom_index):
        return False


@register("PReLU")
class PReLU(_Elementwise):
    """Slopes a (C,) or, with channel_shared, a 0-D blob. In place, the input is
    kept for backward. The slope gradient sums dy * x over x <= 0."""

    def layer_setup(self, bottom, top):
        p = self.param.prelu_param
        if bottom[0].ndim < 2:
            self.fail(f"input must have at least 2 axes, got {bottom[0].shape}")
        self.shared = bool(p.channel_shared)
        filler = p.filler if p.HasField("filler") else _constant_filler(0.25)
        self.make_blob(() if self.shared else (bottom[0].shape[1],), filler)

    def reshape(self, bottom, top):
        if bottom[0].ndim < 2:
            self.fail(f"input must have at least 2 axes, got {bottom[0].shape}")
        if not self.shared and bottom[0].shape[1] != self.blobs[0].count:
            self.fail(f"input has {bottom[0].shape[1]} channels but the layer has "
                      f"{self.blobs[0].count} slopes")
        top[0].reshape_like(bottom[0])

    def _slope(self, x):
        a = self.blobs[0].data
        return a if self.shared else a.reshape((1, -1) + (1,) * (x.ndim - 2))

    def forward_cpu(self, bottom, top):
        x = bottom[0].data
        xp = backend.xp_of(x)
        self.input = x.copy() if top[0] is bottom[0] else None
        top[0].data[...] = xp.maximum(x, 0) + self._slope(x) * xp.minimum(x, 0)

    def backward_cpu(self, top, propagate_down, bottom):
        x = bottom[0].data if self.input is None else self.input
        dy = top[0].diff
        negative = x <= 0
        g = dy * x * negative          # before dx is written: dy may be dx when in place
        if self.shared:
            self.blobs[0].diff += g.sum()
        else:
            axes = (0,) + tuple(range(2, x.ndim))
            self.blobs[0].diff += g.sum(axis=axes)
        if propagate_down[0]:
            bottom[0].diff[...] = dy * ((x > 0) + self._slope(x) * negative)


def _constant_filler(value):
    from ..proto import caffe_pb2
    return caffe_pb2.FillerParameter(type="constant", value=value)
