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
TanH their output, Dropout its stored mask. ReLU, Sigmoid and TanH have one
path for NumPy and CuPy; Dropout's GPU forward draws its mask with
firecaffe/kernels/dropout.cu.
"""
import numpy as np

from ..core import backend
from ..kernels import launch
from . import _threads, register
from ._threads import elementwise, scratch_mask, zeros
from .base import Layer


def _fast(*arrays):
    """True when the arrays are C-contiguous NumPy arrays (the threaded path)."""
    return all(isinstance(a, np.ndarray) and a.flags.c_contiguous for a in arrays)


class _Neuron(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def reshape(self, bottom, top):
        top[0].reshape_like(bottom[0])


def relu_grad_piece(a, g, out):
    """out = g * (a > 0) on one cache-sized piece: the ReLU's backward with slope 0, ``a`` its
    input or (in place) its output; also run by Concat's backward for its bottoms' ReLUs."""
    np.multiply(g, np.greater(a, 0, out=scratch_mask(a.size)), out=out)


def relu_piece(a, b, slope, same):
    """b = ReLU(a) on one C-contiguous piece (``same``: b is a), Caffe's arithmetic: with slope 0,
    max(x, 0) + 0 * min(x, 0), so -inf gives NaN (0 * -inf) and a NaN stays NaN; x * (x > 0) + 0
    computes that, with +0 for negatives (np.maximum would give 0 for -inf). A piece whose minimum
    is finite holds neither -inf nor NaN: there np.maximum is the same and takes about half the
    time (the minimum is read while the piece is in cache; against an array of zeros, which NumPy
    vectorizes and a scalar 0 it does not). Also run by the BatchNorm -> Scale -> ReLU chain
    (engine/fusion.py) on its blocks."""
    if slope == 0:
        if a.size and a.min() >= -np.finfo(a.dtype).max:
            np.maximum(a, zeros(a.size, a.dtype), out=b)
            return
        with np.errstate(invalid="ignore"):
            np.multiply(a, np.greater(a, 0, out=scratch_mask(a.size)), out=b)
        np.add(b, 0, out=b)
        return
    m = np.greater(a, 0, out=scratch_mask(a.size))   # before b (maybe a itself) changes
    np.logical_not(m, out=m)                        # not (x > 0): NaN takes the slope
    if not same:
        np.copyto(b, a)
    np.multiply(b, a.dtype.type(slope), out=b, where=m)


def relu_grad(a, g, out, slope, same):
    """out = the ReLU's backward of g on one piece, ``a`` the ReLU's input or (in place) output
    (``same``: out is g)."""
    if slope == 0:
        relu_grad_piece(a, g, out)
        return
    m = np.greater(a, 0, out=scratch_mask(a.size))
    np.logical_not(m, out=m)
    if not same:
        np.copyto(out, g)
    np.multiply(out, g.dtype.type(slope), out=out, where=m)


@register("ReLU")
class ReLU(_Neuron):
    """In place or not, with no full-size temporaries; Caffe's arithmetic for non-finite values too
    (-inf gives NaN with slope 0, -inf with another slope). Backward reads the sign
    of ``bottom[0].data`` (the output when in place): dx = dy * (x > 0), or
    dy where x > 0 and dy * negative_slope elsewhere; NaN/inf in dy propagate.
    NumPy arrays are done in place, in cache-sized chunks (``_threads.elementwise``)."""

    def layer_setup(self, bottom, top):
        self.negative_slope = float(self.param.relu_param.negative_slope)

    def forward(self, bottom, top):
        x, y = bottom[0].data, top[0].data
        xp = backend.xp_of(x)
        if _fast(x, y):
            slope, same = self.negative_slope, y is x
            elementwise(lambda a, b: relu_piece(a, b, slope, same), x, y, chunk=_threads.CHUNK)
        elif self.negative_slope == 0:
            with np.errstate(invalid="ignore"):
                xp.multiply(x, x > 0, out=y)
            y += 0
        else:
            y[...] = xp.where(x > 0, x, x * x.dtype.type(self.negative_slope))

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x = bottom[0].data        # the output when in place: same sign
        dy, dx = top[0].diff, bottom[0].diff
        xp = backend.xp_of(dy)
        slope = dy.dtype.type(self.negative_slope)
        if _fast(x, dy, dx):
            same = dx is dy
            elementwise(lambda a, g, out: relu_grad(a, g, out, self.negative_slope, same), x, dy, dx,
                        chunk=_threads.CHUNK)
        elif self.negative_slope == 0:
            xp.multiply(dy, x > 0, out=dx)
        else:
            dx[...] = xp.where(x > 0, dy, dy * slope)


@register("Sigmoid")
class Sigmoid(_Neuron):
    def forward(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        # 0.5 * (1 + tanh(x / 2)) equals 1 / (1 + exp(-x)) and never overflows.
        y = xp.tanh(bottom[0].data * 0.5)
        y += 1
        y *= 0.5
        top[0].data[...] = y

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y = top[0].data
            bottom[0].diff[...] = top[0].diff * y * (1 - y)


@register("TanH")
class TanH(_Neuron):
    def forward(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        xp.tanh(bottom[0].data, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
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

    def _passes_through(self, bottom, top):
        """Outside training Dropout is the identity: copy (unless in place) and say so."""
        if self.phase == "TRAIN":
            return False
        if top[0] is not bottom[0]:
            top[0].data[...] = bottom[0].data
        return True

    def forward_cpu(self, bottom, top):
        if self._passes_through(bottom, top):
            return
        x = bottom[0].data
        xp = backend.xp_of(x)
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
        keep = backend.rng().random(x.shape, dtype=dtype) >= self.ratio
        mask = keep.astype(x.dtype)
        mask *= x.dtype.type(self.scale)
        self.mask = xp.asarray(mask)
        xp.multiply(x, self.mask, out=top[0].data)

    def forward_gpu(self, bottom, top):
        """The mask from uniform randoms of cupy.random (seeded by backend.seed)."""
        if self._passes_through(bottom, top):
            return
        x = bottom[0].data
        xp = backend.xp_of(x)
        uniform = xp.random.random_sample(x.shape, dtype=x.dtype)
        self.mask = xp.empty_like(x)
        t = x.dtype.type
        launch("dropout", "dropout_forward", x.dtype, x.size,
               (x, uniform, top[0].data, self.mask, np.int32(x.size), t(self.ratio), t(self.scale)))

    def backward_cpu(self, top, propagate_down, bottom):
        """dx = dy * mask, on either array module (so also the GPU path)."""
        if not propagate_down[0]:
            return
        if self.phase != "TRAIN":
            if top[0] is not bottom[0]:
                bottom[0].diff[...] = top[0].diff
            return
        xp = backend.xp_of(top[0].diff)
        xp.multiply(top[0].diff, self.mask, out=bottom[0].diff)
