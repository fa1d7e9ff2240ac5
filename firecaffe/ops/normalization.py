"""Normalization and affine layers: BatchNorm, Scale, Bias.

Caffe types and parameters:
  BatchNorm  batch_norm_param { use_global_stats (default: true in TEST, false in
             TRAIN), moving_average_fraction (0.999), eps (1e-5) }
             y = (x - mean_c) / sqrt(var_c + eps) per channel c = axis 1, over the
             batch and spatial axes; no scale or shift (follow with Scale).
  Scale      scale_param { axis (1), num_axes (1), filler (constant 1),
             bias_term (false), bias_filler (constant 0) }
             y = x * s (+ b), s broadcast over bottom[0].shape[axis:axis+num_axes];
             s is learned with one bottom, or is bottom[1] with two.
  Bias       bias_param { axis (1), num_axes (1), filler (constant 0) }
             y = x + b, b learned with one bottom, or bottom[1] with two.

All three may run in place.
"""
import numpy as np

from ..core import backend
from ..proto import caffe_pb2
from . import register
from .base import Layer


@register("BatchNorm")
class BatchNorm(Layer):
    """Caffe's BatchNorm with its three statistics blobs: blobs[0] the running
    sum of means, blobs[1] of (unbiased) variances, blobs[2] (shape (1,)) the
    running normalizer, so the global mean is blobs[0] / blobs[2]. Every forward
    that uses batch statistics updates them as
    ``s = s * maf + 1; mean_sum = mean_sum * maf + mean; var_sum = var_sum * maf +
    m / (m - 1) * var`` (m values per channel).

    These blobs are statistics, not weights: ``frozen_blobs`` lists their indices
    and the net forces their lr_mult and decay_mult to 0, as Caffe does.
    """
    exact_num_bottom = 1
    exact_num_top = 1
    frozen_blobs = [0, 1, 2]

    def layer_setup(self, bottom, top):
        p = self.param.batch_norm_param
        self.use_global_stats = (p.use_global_stats if p.HasField("use_global_stats")
                                 else self.phase == "TEST")
        self.maf = float(p.moving_average_fraction)
        self.eps = float(p.eps)
        self.channels = 1 if bottom[0].ndim == 1 else bottom[0].shape[1]
        for shape in ((self.channels,), (self.channels,), (1,)):
            self.make_blob(shape)

    def reshape(self, bottom, top):
        shape = tuple(bottom[0].shape)
        if len(shape) >= 2 and shape[1] != self.channels:
            self.fail(f"bottom shape {shape} has {shape[1]} channels, the layer was set up "
                      f"for {self.channels}")
        top[0].reshape(shape)

    def _view(self, array):
        return array.reshape(array.shape[0] if array.ndim else 1, self.channels, -1)

    def forward(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        x = self._view(bottom[0].data)
        dt = x.dtype.type
        if self.use_global_stats:
            s = float(self.blobs[2].data.reshape(-1)[0])
            factor = dt(0 if s == 0 else 1 / s)
            mean = self.blobs[0].data * factor
            var = self.blobs[1].data * factor
            xc = x - mean[None, :, None]
        else:
            mean = x.mean(axis=(0, 2))
            xc = x - mean[None, :, None]
            var = (xc * xc).mean(axis=(0, 2))
            m = x.shape[0] * x.shape[2]
            correction = dt(m / (m - 1) if m > 1 else 1)
            for blob, value in ((self.blobs[2], 1), (self.blobs[0], mean),
                                (self.blobs[1], var * correction)):
                blob.data *= dt(self.maf)
                blob.data += value
        self.std = xp.sqrt(var + dt(self.eps))
        xc /= self.std[None, :, None]
        self.x_norm = xc                       # kept for backward: top may be overwritten
        self._view(top[0].data)[...] = xc

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = self._view(top[0].diff)
        inv_std = 1 / self.std[None, :, None]
        if self.use_global_stats:
            dx = dy * inv_std
        else:
            y = self.x_norm
            dx = dy - dy.mean(axis=(0, 2), keepdims=True)
            dx -= y * (dy * y).mean(axis=(0, 2), keepdims=True)
            dx *= inv_std
        self._view(bottom[0].diff)[...] = dx

    def flops(self, bottom, top):
        return 2 * bottom[0].count


def _axes(layer, x_shape, axis, p_shape, what):
    """(outer, dim, inner) for broadcasting a parameter of shape ``p_shape``
    against ``x_shape`` starting at ``axis``; a scalar parameter uses axis 0."""
    ndim = len(x_shape)
    if len(p_shape) == 0:
        axis = 0
    elif not -ndim <= axis < ndim:
        layer.fail(f"axis {axis} is out of range for bottom shape {tuple(x_shape)}")
    axis %= max(ndim, 1)
    if tuple(x_shape[axis:axis + len(p_shape)]) != tuple(p_shape):
        layer.fail(f"{what} shape {tuple(p_shape)} does not match bottom shape "
                   f"{tuple(x_shape)} from axis {axis}")
    outer = int(np.prod(x_shape[:axis], dtype=np.int64))
    inner = int(np.prod(x_shape[axis + len(p_shape):], dtype=np.int64))
    return outer, int(np.prod(p_shape, dtype=np.int64)), inner


def _learned_shape(layer, bottom, axis, num_axes):
    shape = tuple(bottom.shape)
    try:
        axis = bottom.canonical_axis(axis)
    except ValueError as exc:
        layer.fail(str(exc))
    if num_axes < -1:
        layer.fail(f"num_axes must be >= -1 (-1: to the end of the bottom), got {num_axes}")
    end = len(shape) if num_axes == -1 else axis + num_axes
    if end > len(shape):
        layer.fail(f"axis {axis} + num_axes {num_axes} run past bottom shape {shape}")
    return shape[axis:end]


def _constant(value):
    return caffe_pb2.FillerParameter(type="constant", value=value)


class _Broadcast(Layer):
    """Shared parts of Bias and Scale: parameter lookup and reductions."""
    min_num_bottom = 1
    max_num_bottom = 2
    exact_num_top = 1

    def _operand(self, bottom, index):
        return bottom[1] if len(bottom) > 1 else self.blobs[index]

    @staticmethod
    def _reduce(grad3):
        return grad3.sum(axis=(0, 2))


@register("Bias")
class Bias(_Broadcast):
    def layer_setup(self, bottom, top):
        p = self.param.bias_param
        if len(bottom) == 1:
            shape = _learned_shape(self, bottom[0], p.axis, p.num_axes)
            self.make_blob(shape, p.filler)

    def reshape(self, bottom, top):
        b = self._operand(bottom, 0)
        self.dims = _axes(self, bottom[0].shape, self.param.bias_param.axis, b.shape, "bias")
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        b = self._operand(bottom, 0).data.reshape(1, self.dims[1], 1)
        top[0].data.reshape(self.dims)[...] = bottom[0].data.reshape(self.dims) + b

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff.reshape(self.dims)
        if len(bottom) == 1:
            self.blobs[0].diff += self._reduce(dy).reshape(self.blobs[0].shape)
        elif propagate_down[1]:
            bottom[1].diff[...] = self._reduce(dy).reshape(bottom[1].shape)
        if propagate_down[0] and top[0] is not bottom[0]:
            bottom[0].diff[...] = top[0].diff

    def flops(self, bottom, top):
        return bottom[0].count


@register("Scale")
class Scale(_Broadcast):
    """With ``bias_term`` the bias is the last blob (blobs[1] with one bottom,
    blobs[0] with two), as in Caffe."""

    def layer_setup(self, bottom, top):
        p = self.param.scale_param
        if len(bottom) == 1:
            shape = _learned_shape(self, bottom[0], p.axis, p.num_axes)
            self.make_blob(shape, p.filler if p.HasField("filler") else _constant(1.0))
        self.bias_term = bool(p.bias_term)
        if self.bias_term:
            num_axes = bottom[1].ndim if len(bottom) > 1 else p.num_axes
            shape = _learned_shape(self, bottom[0], p.axis, num_axes)
            self.make_blob(shape, p.bias_filler)
        self.x_copy = None

    def reshape(self, bottom, top):
        axis = self.param.scale_param.axis
        self.dims = _axes(self, bottom[0].shape, axis, self._operand(bottom, 0).shape, "scale")
        if self.bias_term:
            self.bias_dims = _axes(self, bottom[0].shape, axis, self.blobs[-1].shape, "bias")
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.dims)
        if top[0] is bottom[0]:
            self.x_copy = x.copy()             # the scale gradient needs the input
        s = self._operand(bottom, 0).data.reshape(1, self.dims[1], 1)
        y = top[0].data.reshape(self.dims)
        backend.xp_of(x).multiply(x, s, out=y)
        if self.bias_term:
            top[0].data.reshape(self.bias_dims)[...] += self.blobs[-1].data.reshape(
                1, self.bias_dims[1], 1)

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff.reshape(self.dims)
        if self.bias_term:
            bias = self.blobs[-1]
            bias.diff += self._reduce(top[0].diff.reshape(self.bias_dims)).reshape(bias.shape)
        learned = len(bottom) == 1
        if learned or propagate_down[1]:
            x = self.x_copy if top[0] is bottom[0] else bottom[0].data.reshape(self.dims)
            grad = self._reduce(dy * x)
            if learned:
                self.blobs[0].diff += grad.reshape(self.blobs[0].shape)
            else:
                bottom[1].diff[...] = grad.reshape(bottom[1].shape)
        if propagate_down[0]:
            s = self._operand(bottom, 0).data.reshape(1, self.dims[1], 1)
            bottom[0].diff.reshape(self.dims)[...] = dy * s

    def flops(self, bottom, top):
        return bottom[0].count * (2 if self.bias_term else 1)
