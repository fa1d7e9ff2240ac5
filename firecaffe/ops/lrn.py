"""Local response normalization (Caffe type "LRN") of an NCHW blob.

lrn_param: local_size n (odd, 5), alpha (1), beta (0.75), k (1),
norm_region ACROSS_CHANNELS (default) or WITHIN_CHANNEL.

ACROSS_CHANNELS: scale = k + alpha/n * (sum of x^2 over the n channels
centred on c, zero padded); y = x * scale^-beta.
WITHIN_CHANNEL: Caffe composes it from square, AVE pooling (n x n, pad
(n-1)/2, stride 1, so always divided by n*n) and power (shift 1, scale alpha),
so scale = 1 + alpha/n^2 * (sum of x^2 over the n x n neighbourhood) and k
is not used; y = x * scale^-beta.

Both share one gradient, the window sum W being self-adjoint:
dx = dy * scale^-beta - 2 alpha' beta * x * W(dy * y / scale), alpha' the
factor in front of the sum. Both paths keep ``self.scale`` for backward; the
GPU path runs firecaffe/kernels/lrn.cu. On the CPU, float32 blobs run oneDNN's
LRN where the library loaded (firecaffe/ops/dnnl/lrn.py: the same formula, both
regions), unless lrn_param.engine is CAFFE.
"""
import numpy as np

from ..core import backend
from ..errors import PrototxtError
from ..kernels import launch
from . import Layer, dnnl, register
from .dnnl import lrn as dnnl_lrn


def _window_sum(a, n, axes):
    """Sum of ``a`` over a centred window of odd width ``n`` along each of ``axes``, zero padded."""
    for axis in axes:
        out = a.copy()
        size = a.shape[axis]
        for d in range(1, min(n // 2, size - 1) + 1):
            head = [slice(None)] * a.ndim
            tail = [slice(None)] * a.ndim
            head[axis], tail[axis] = slice(d, None), slice(None, size - d)
            out[tuple(head)] += a[tuple(tail)]
            out[tuple(tail)] += a[tuple(head)]
        a = out
    return a


def _power(a, exponent):
    """a ** exponent, with a faster path for Caffe's usual beta = 0.75."""
    if exponent == -0.75:
        return 1.0 / np.sqrt(a * np.sqrt(a))
    return np.power(a, exponent)


@register("LRN")
class LRN(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.lrn_param
        self.size = int(p.local_size)
        if self.size % 2 == 0 or self.size < 1:
            self.fail(f"local_size must be odd, got {self.size}", PrototxtError)
        self.alpha, self.beta, self.k = float(p.alpha), float(p.beta), float(p.k)
        self.across = p.norm_region == p.ACROSS_CHANNELS
        if self.across:
            self.axes, self.factor, self.shift = (1,), self.alpha / self.size, self.k
        else:
            self.axes, self.factor, self.shift = (2, 3), self.alpha / self.size ** 2, 1.0
        self.use_dnnl, self.dnnl_ran = dnnl.AVAILABLE and p.engine != p.CAFFE, False
        self.dnnl_geometry = None

    @property
    def engine_name(self):
        """oneDNN where the last forward ran on it (firecaffe/ops/dnnl/lrn.py), else NumPy."""
        return dnnl.VERSION if self.dnnl_ran else "NumPy"

    def reshape(self, bottom, top):
        if bottom[0].ndim != 4:
            self.fail(f"input must have 4 axes (num, channels, height, width), got {bottom[0].shape}")
        top[0].reshape(bottom[0].shape)

    def forward_cpu(self, bottom, top):
        x = bottom[0].data
        if dnnl_lrn.forward(self, x, top[0].data):
            return
        scale = _window_sum(x * x, self.size, self.axes)
        scale *= x.dtype.type(self.factor)
        scale += x.dtype.type(self.shift)
        self.scale = scale
        np.multiply(x, _power(scale, -self.beta).astype(x.dtype, copy=False), out=top[0].data)

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x, y, dy = bottom[0].data, top[0].data, top[0].diff
        if dnnl_lrn.backward(self, x, dy, bottom[0].diff):
            return
        inner = _window_sum(dy * y / self.scale, self.size, self.axes)
        inner *= x
        inner *= x.dtype.type(2 * self.factor * self.beta)
        np.multiply(dy, _power(self.scale, -self.beta).astype(x.dtype, copy=False), out=bottom[0].diff)
        bottom[0].diff -= inner

    def forward_gpu(self, bottom, top):
        x = bottom[0].data
        self.scale = backend.xp_of(x).empty_like(x)
        t = x.dtype.type
        launch("lrn", "lrn_forward", x.dtype, x.size,
               (x, self.scale, top[0].data) + self._kernel_args(x) + (t(self.shift), t(self.beta)))

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x = bottom[0].data
        launch("lrn", "lrn_backward", x.dtype, x.size,
               (x, top[0].data, self.scale, top[0].diff, bottom[0].diff) + self._kernel_args(x)
               + (x.dtype.type(self.beta),))

    def _kernel_args(self, x):
        n, c, h, w = x.shape
        return tuple(np.int32(v) for v in (x.size, c, h, w, self.size, 1 if self.across else 0)) \
            + (x.dtype.type(self.factor),)

    def flops(self, bottom, top):
        return bottom[0].count * (2 * self.size + 6)
