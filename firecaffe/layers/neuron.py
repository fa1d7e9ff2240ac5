"""Element-wise neuron layers: ReLU, Sigmoid, TanH, Dropout.

Caffe types and parameters:
  ReLU     relu_param { negative_slope (0) }     y = x > 0 ? x : negative_slope * x
  Sigmoid  (none)                                y = 1 / (1 + exp(-x))
  TanH     (none)                                y = tanh(x)
  Dropout  dropout_param { dropout_ratio (0.5) } TRAIN: y = x * mask / (1 - ratio),
                                                 mask ~ Bernoulli(1 - ratio); TEST: y = x

All four may run in place (top blob is the bottom blob). Their backward passes
read only what survives an in-place forward: ReLU the sign of its input (the
output has the same sign for negative_slope >= 0, as in Caffe), Sigmoid and
TanH their output, Dropout its stored mask.
"""
import numpy as np

from .. import backend
from . import register
from .base import Layer


class _Neuron(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def reshape(self, bottom, top):
        top[0].reshape_like(bottom[0])


@register("ReLU")
class ReLU(_Neuron):
    def layer_setup(self, bottom, top):
        self.negative_slope = float(self.param.relu_param.negative_slope)

    def forward_cpu(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        x = bottom[0].data
        if self.negative_slope == 0:
            xp.maximum(x, 0, out=top[0].data)
        else:
            top[0].data[...] = xp.where(x > 0, x, x * x.dtype.type(self.negative_slope))

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp = backend.xp_of(top[0].diff)
        x = bottom[0].data        # the output when in place: same sign
        dy = top[0].diff
        if self.negative_slope == 0:
            bottom[0].diff[...] = dy * (x > 0)
        else:
            bottom[0].diff[...] = xp.where(x > 0, dy, dy * dy.dtype.type(self.negative_slope))


@register("Sigmoid")
class Sigmoid(_Neuron):
    def forward_cpu(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        # 0.5 * (1 + tanh(x / 2)) equals 1 / (1 + exp(-x)) and never overflows.
        y = xp.tanh(bottom[0].data * 0.5)
        y += 1
        y *= 0.5
        top[0].data[...] = y

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y = top[0].data
            bottom[0].diff[...] = top[0].diff * y * (1 - y)


@register("TanH")
class TanH(_Neuron):
    def forward_cpu(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        xp.tanh(bottom[0].data, out=top[0].data)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y = top[0].data
            bottom[0].diff[...] = top[0].diff * (1 - y * y)


@register("Dropout")
class Dropout(_Neuron):
    """Inverted dropout, as Caffe: kept units are scaled by 1 / (1 - ratio) at
    TRAIN time so TEST is the identity. ``self.mask`` holds the scaled mask
    (0 or 1 / (1 - ratio)) of the last TRAIN forward for backward."""

    def layer_setup(self, bottom, top):
        self.ratio = float(self.param.dropout_param.dropout_ratio)
        if not 0.0 <= self.ratio < 1.0:
            self.fail(f"dropout_ratio must be in [0, 1), got {self.ratio}")
        self.scale = 1.0 / (1.0 - self.ratio)
        self.mask = None

    def forward_cpu(self, bottom, top):
        x = bottom[0].data
        if self.phase != "TRAIN":
            if top[0] is not bottom[0]:
                top[0].data[...] = x
            return
        xp = backend.xp_of(x)
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
        keep = backend.rng().random(x.shape, dtype=dtype) >= self.ratio
        self.mask = xp.asarray(keep.astype(x.dtype) * x.dtype.type(self.scale))
        top[0].data[...] = x * self.mask

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if self.phase != "TRAIN":
            if top[0] is not bottom[0]:
                bottom[0].diff[...] = top[0].diff
            return
        bottom[0].diff[...] = top[0].diff * self.mask
