"""Affine layers: Scale, Bias (BatchNorm: firecaffe/ops/batch_norm.py).

Caffe types and parameters:
  Scale      scale_param { axis (1), num_axes (1), filler (constant 1),
             bias_term (false), bias_filler (constant 0) }
             y = x * s (+ b), s broadcast over bottom[0].shape[axis:axis+num_axes];
             s is learned with one bottom, or is bottom[1] with two.
  Bias       bias_param { axis (1), num_axes (1), filler (constant 0) }
             y = x + b, b learned with one bottom, or bottom[1] with two.

Both may run in place. On C-contiguous NumPy arrays Scale runs in cache-sized
blocks (firecaffe/ops/_channels.py); ``blocked = False`` runs the reference passes.
"""
import numpy as np

from ..core import backend
from ..proto import caffe_pb2
from . import _channels, register
from .base import Layer


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
class Scale(_channels.Blocked, _Broadcast):
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
        s = self._operand(bottom, 0).data.reshape(1, self.dims[1], 1)
        y = top[0].data.reshape(self.dims)
        self.ran_blocked = self._blocked(bottom, x, y)
        if self.ran_blocked:
            self._blocked_forward(x, y, s[0], top[0] is bottom[0])
            return
        if top[0] is bottom[0]:
            self.x_copy = x.copy()             # the scale gradient needs the input
        backend.xp_of(x).multiply(x, s, out=y)
        if self.bias_term:
            top[0].data.reshape(self.bias_dims)[...] += self.blobs[-1].data.reshape(
                1, self.bias_dims[1], 1)

    def _blocked(self, bottom, *arrays):
        """The cache-blocked path: NumPy arrays, and the bias over the scale's axes."""
        return (self.blocked and _channels.usable(*arrays)
                and (not self.bias_term or self.bias_dims == self.dims))

    def _blocked_forward(self, x, y, s, in_place):
        """y = x * s (+ b), in blocks; in place, x is kept (in a buffer) for the scale gradient."""
        keep = _channels.buffer(self, "x_copy", x.shape, x.dtype) if in_place else None
        bias = self.blobs[-1].data.reshape(-1, 1) if self.bias_term else None

        def part(i, cs):
            if keep is not None:
                np.copyto(keep[i, cs], x[i, cs])
            np.multiply(x[i, cs], s[cs], out=y[i, cs])
            if bias is not None:
                y[i, cs] += bias[cs]
        _channels.each(part, x.shape)

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff.reshape(self.dims)
        learned = len(bottom) == 1
        want_scale = learned or propagate_down[1]
        x = self.x_copy if top[0] is bottom[0] else bottom[0].data.reshape(self.dims)
        dx = bottom[0].diff.reshape(self.dims)
        if self._blocked(bottom, dy, x, dx):
            grad, bias_grad = self._blocked_backward(dy, x, dx, want_scale, propagate_down[0],
                                                     self._operand(bottom, 0).data.reshape(-1, 1))
        else:
            bias_grad = self._reduce(top[0].diff.reshape(self.bias_dims)) if self.bias_term else None
            grad = self._reduce(dy * x) if want_scale else None
            if propagate_down[0]:
                dx[...] = dy * self._operand(bottom, 0).data.reshape(1, self.dims[1], 1)
        if self.bias_term:
            self.blobs[-1].diff += bias_grad.reshape(self.blobs[-1].shape)
        if learned:
            self.blobs[0].diff += grad.reshape(self.blobs[0].shape)
        elif want_scale:
            bottom[1].diff[...] = grad.reshape(bottom[1].shape)

    def _blocked_backward(self, dy, x, dx, want_scale, want_dx, s):
        """(scale gradient, bias gradient) summed per block, and dx = dy * s, in one pass
        (dy and dx may be one array: each block's sums are taken before its dx)."""
        sums, dots = _channels.partial(dy.shape, dy.dtype, 2)

        def part(i, cs):
            if self.bias_term:
                _channels.total(dy[i, cs], out=sums[i, cs])
            if want_scale:
                _channels.dot(dy[i, cs], x[i, cs], out=dots[i, cs])
            if want_dx:
                np.multiply(dy[i, cs], s[cs], out=dx[i, cs])
        _channels.each(part, dy.shape)
        return dots.sum(axis=0), sums.sum(axis=0)

    def flops(self, bottom, top):
        return bottom[0].count * (2 if self.bias_term else 1)
