"""More element-wise neuron layers: ELU, Swish, Clip, AbsVal, BNLL, Threshold,
PReLU (Exp, Log and Power are in exp_log_power.py).

Caffe types and parameters (y = f(x), element-wise):
  ELU        elu_param { alpha (1) }        y = x > 0 ? x : alpha (exp(x) - 1)
  Swish      swish_param { beta (1) }       y = x sigmoid(beta x)
  Clip       clip_param { min, max }        y = min(max(x, min), max); dy passes where min <= x <= max
  AbsVal     (none)                         y = |x|; never in place (Caffe refuses it too)
  BNLL       (none)                         y = log(1 + exp(x))
  Threshold  threshold_param { threshold (0) }                   y = x > threshold ? 1 : 0; no backward
  PReLU      prelu_param { filler (constant 0.25), channel_shared (false) }
             y = x > 0 ? x : a_c x, one learnable slope per channel (axis 1), or one 0-D slope

Every layer here runs unchanged on NumPy and CuPy arrays. Backward passes use
what Caffe's use (the output for ELU and Swish; the input elsewhere), so they
agree with Caffe where a formula has more than one floating-point form.
"""
from ..core import backend
from ..errors import PrototxtError
from . import register
from .base import Layer

BNLL_THRESHOLD = 50.0      # Caffe caps x at 50 before exp in BNLL's backward


class Elementwise(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def reshape(self, bottom, top):
        top[0].reshape_like(bottom[0])

    def flops(self, bottom, top):
        return bottom[0].count


@register("ELU")
class ELU(Elementwise):
    def layer_setup(self, bottom, top):
        self.alpha = float(self.param.elu_param.alpha)

    def forward(self, bottom, top):
        x = bottom[0].data
        xp = backend.xp_of(x)
        top[0].data[...] = xp.maximum(x, 0) + self.alpha * (xp.exp(xp.minimum(x, 0)) - 1)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            x, y, dy = bottom[0].data, top[0].data, top[0].diff   # x is y when in place
            bottom[0].diff[...] = dy * ((x > 0) + (self.alpha + y) * (x <= 0))


@register("Swish")
class Swish(Elementwise):
    def layer_setup(self, bottom, top):
        self.beta = float(self.param.swish_param.beta)

    def forward(self, bottom, top):
        x = bottom[0].data
        xp = backend.xp_of(x)
        self.sigmoid = 0.5 * xp.tanh(x * (0.5 * self.beta)) + 0.5
        top[0].data[...] = x * self.sigmoid

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y, s = top[0].data, self.sigmoid
            bottom[0].diff[...] = top[0].diff * (self.beta * y + s * (1 - self.beta * y))


@register("Clip")
class Clip(Elementwise):
    def layer_setup(self, bottom, top):
        p = self.param.clip_param
        if not (p.HasField("min") and p.HasField("max")):
            self.fail("clip_param needs both min and max", PrototxtError)
        self.low, self.high = float(p.min), float(p.max)

    def forward(self, bottom, top):
        x = bottom[0].data
        xp = backend.xp_of(x)
        top[0].data[...] = xp.maximum(self.low, xp.minimum(x, self.high))

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            x = bottom[0].data
            bottom[0].diff[...] = top[0].diff * ((x >= self.low) & (x <= self.high))


@register("AbsVal")
class AbsVal(Elementwise):
    def layer_setup(self, bottom, top):
        if top[0] is bottom[0]:
            self.fail("cannot run in place (its backward needs the sign of the input)", PrototxtError)

    def forward(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        xp.abs(bottom[0].data, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            xp = backend.xp_of(top[0].diff)
            bottom[0].diff[...] = xp.sign(bottom[0].data) * top[0].diff


@register("BNLL")
class BNLL(Elementwise):
    def forward(self, bottom, top):
        x = bottom[0].data
        xp = backend.xp_of(x)
        top[0].data[...] = xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            xp = backend.xp_of(top[0].diff)
            e = xp.exp(xp.minimum(bottom[0].data, BNLL_THRESHOLD))
            bottom[0].diff[...] = top[0].diff * e / (e + 1)


@register("Threshold")
class Threshold(Elementwise):
    def layer_setup(self, bottom, top):
        self.threshold = float(self.param.threshold_param.threshold)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data > self.threshold

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            self.fail("has no backward pass (a step function); set propagate_down: false "
                      "or do not use force_backward", PrototxtError)

    def allow_force_backward(self, bottom_index):
        return False


@register("PReLU")
class PReLU(Elementwise):
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

    def forward(self, bottom, top):
        x = bottom[0].data
        xp = backend.xp_of(x)
        self.input = x.copy() if top[0] is bottom[0] else None
        top[0].data[...] = xp.maximum(x, 0) + self._slope(x) * xp.minimum(x, 0)

    def backward(self, top, propagate_down, bottom):
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
