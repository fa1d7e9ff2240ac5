"""BatchNorm.

Caffe type and parameters:
  BatchNorm  batch_norm_param { use_global_stats (default: true in TEST, false in
             TRAIN), moving_average_fraction (0.999), eps (1e-5) }
             y = (x - mean_c) / sqrt(var_c + eps) per channel c = axis 1, over the
             batch and spatial axes; no scale or shift (follow with Scale).

May run in place. On C-contiguous NumPy arrays the passes run in cache-sized
blocks (firecaffe/ops/_channels.py), with Caffe's arithmetic: mean, then the
variance of the centred values (biased for normalizing, m/(m-1) for the running
sum), division by sqrt(var + eps); ``blocked = False`` (and CuPy arrays) run the
reference passes. oneDNN's batch normalization was measured and is not used: on
the plain arrays it has only its generic kernel (ncsp_bnorm), slower than the
blocked NumPy passes (forward 46 against 24 ms on (16, 64, 112, 112)), and its
jit kernels want blocked layouts, whose reorders would cost more than the layer.
"""
import math

import numpy as np

from ..core import backend
from . import _channels, register
from .base import Layer
from .dnnl.chain import batch_norm_gradient, chain_forward
from .neuron import relu_grad, relu_piece

OUTPUT_BOUND = 1e37         # below float32's largest (3.4e38): a chain's outputs under it are finite


@register("BatchNorm")
class BatchNorm(_channels.Blocked, Layer):
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

    chain_engine = None          # what computed the last forward's chain (forward_chain), None: no chain

    @property
    def engine_name(self):
        """`firecaffe time`'s word for this layer: the chain's engines where it ran as one."""
        return self.chain_engine or super().engine_name

    def forward(self, bottom, top):
        self.chain_engine = None
        x, y = self._view(bottom[0].data), self._view(top[0].data)
        dt = x.dtype.type
        if self.use_global_stats:
            s = float(self.blobs[2].data.reshape(-1)[0])
            factor = dt(0 if s == 0 else 1 / s)
            mean = self.blobs[0].data * factor
            var = self.blobs[1].data * factor
        else:
            mean = var = None
        self.ran_blocked = self.blocked and _channels.usable(x, y)
        if self.ran_blocked:
            self._blocked_forward(x, y, mean, var)
        else:
            self._reference_forward(x, y, mean, var)

    def _update_statistics(self, mean, var, m):
        dt = mean.dtype.type
        correction = dt(m / (m - 1) if m > 1 else 1)
        for blob, value in ((self.blobs[2], 1), (self.blobs[0], mean), (self.blobs[1], var * correction)):
            blob.data *= dt(self.maf)
            blob.data += value

    def _reference_forward(self, x, y, mean, var):
        """The straightforward passes (any array module): the reference of the blocked ones."""
        xp = backend.xp_of(x)
        dt = x.dtype.type
        if mean is None:
            mean = x.mean(axis=(0, 2))
            xc = x - mean[None, :, None]
            var = (xc * xc).mean(axis=(0, 2))
            self._update_statistics(mean, var, x.shape[0] * x.shape[2])
        else:
            xc = x - mean[None, :, None]
        self.std = xp.sqrt(var + dt(self.eps))
        xc /= self.std[None, :, None]
        self.x_norm = xc                       # kept for backward: top may be overwritten
        y[...] = xc

    def _blocked_forward(self, x, y, mean, var):
        """Caffe's arithmetic (two-pass variance, division by the standard deviation)
        in cache-sized blocks; x_norm is a kept buffer, needed only with batch statistics."""
        dt = x.dtype.type
        if mean is not None:                   # global statistics: backward reads only std
            self.std = np.sqrt(var + dt(self.eps))
            std = self.std[:, None]

            def normalize(i, cs):
                np.subtract(x[i, cs], mean[cs, None], out=y[i, cs])
                np.divide(y[i, cs], std[cs], out=y[i, cs])
            _channels.each(normalize, x.shape)
            self.x_norm = None
            return
        m = x.shape[0] * x.shape[2]
        mean = np.einsum("ncl->nc", x).sum(axis=0) / dt(m)     # per row, as Caffe's gemv
        xn = _channels.buffer(self, "_x_norm_buffer", x.shape, x.dtype)
        (squares,) = _channels.partial(x.shape, x.dtype)

        def center(i, cs):
            np.subtract(x[i, cs], mean[cs, None], out=xn[i, cs])
            _channels.dot(xn[i, cs], xn[i, cs], out=squares[i, cs])
        _channels.each(center, x.shape)
        var = squares.sum(axis=0) / dt(m)
        self._update_statistics(mean, var, m)
        self.std = np.sqrt(var + dt(self.eps))
        std = self.std[:, None]

        def scale(i, cs):
            np.divide(xn[i, cs], std[cs], out=xn[i, cs])
            np.copyto(y[i, cs], xn[i, cs])
        _channels.each(scale, x.shape)
        self.x_norm = xn

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy, dx = self._view(top[0].diff), self._view(bottom[0].diff)
        if self.blocked and _channels.usable(dy, dx):
            self._blocked_backward(dy, dx)
            return
        inv_std = 1 / self.std[None, :, None]
        if self.use_global_stats:
            grad = dy * inv_std
        else:
            y = self.x_norm
            grad = dy - dy.mean(axis=(0, 2), keepdims=True)
            grad -= y * (dy * y).mean(axis=(0, 2), keepdims=True)
            grad *= inv_std
        dx[...] = grad

    def _blocked_backward(self, dy, dx):
        """dx = (dy - mean(dy) - y mean(dy y)) / std per channel (dy / std with global
        statistics), dy and dx possibly one array (in place)."""
        std = self.std[:, None]
        if self.use_global_stats:
            _channels.each(lambda i, cs: np.divide(dy[i, cs], std[cs], out=dx[i, cs]), dy.shape)
            return
        y = self.x_norm
        sums, dots = _channels.partial(dy.shape, dy.dtype, 2)

        def reduce(i, cs):
            _channels.total(dy[i, cs], out=sums[i, cs])
            _channels.dot(dy[i, cs], y[i, cs], out=dots[i, cs])
        _channels.each(reduce, dy.shape)
        self._blocked_gradient(dy, dx, y, sums, dots)

    def _blocked_gradient(self, dy, dx, y, sums, dots):
        """The batch-statistics gradient from x_norm (``y``) and the per-block sums of dy and of
        dy * x_norm."""
        dt, std = dy.dtype.type, self.std[:, None]
        m = dt(dy.shape[0] * dy.shape[2])
        mean_dy, mean_dyy = (sums.sum(axis=0) / m)[:, None], (dots.sum(axis=0) / m)[:, None]
        prim = batch_norm_gradient(self, dy.shape) if dy.dtype == np.float32 else None
        if prim is not None and all(np.isfinite(v).all() for v in (mean_dy, mean_dyy, std)) and std.min() > 0:
            prim(dy, dx, y, mean_dy, mean_dyy, std)       # finite sums: every dy and x_norm is finite
            return

        def gradient(i, cs):
            t = _channels.scratch(y[i, cs].shape, dy.dtype)
            np.multiply(y[i, cs], mean_dyy[cs], out=t)
            t += mean_dy[cs]
            np.subtract(dy[i, cs], t, out=t)
            np.divide(t, std[cs], out=dx[i, cs])
        _channels.each(gradient, dy.shape)

    # --- BatchNorm -> Scale (-> ReLU) in one chain (engine/fusion.py) -----------------------
    def _chain_arrays(self, bottom, top, scale, *more):
        """(x, y) as (n, channels, inner) views when the chain can run on them: NumPy arrays on the
        blocked passes, and a Scale of one learned value (and bias) per channel; else None."""
        x, y = self._view(bottom[0].data), self._view(top[0].data)
        if not (self.blocked and scale.blocked and _channels.usable(x, y, *more)) \
                or tuple(scale.dims) != x.shape or len(scale.blobs) != 1 + scale.bias_term \
                or (scale.bias_term and tuple(scale.bias_dims) != x.shape):
            return None
        return x, y

    def forward_chain(self, bottom, top, scale, relu=None):
        """This BatchNorm, the Scale in place on its top and (unless None) the ReLU in place after
        it, in three passes over the blob instead of eight: the mean, the centred squares, then
        per block x_norm = (x - mean) / std (kept, in the Scale's buffer, for both backward
        passes), y = x_norm * s + b, the ReLU. Each block does the unfused layers' arithmetic in
        their order, so every value (top, x_norm, statistics) is theirs bit for bit. True where it
        ran; False (nothing done) where the arrays or the Scale do not suit it."""
        arrays = self._chain_arrays(bottom, top, scale)
        if arrays is None:
            return False
        x, y = arrays
        dt = x.dtype.type
        xn = _channels.buffer(scale, "x_copy", x.shape, x.dtype)
        if self.use_global_stats:
            s = float(self.blobs[2].data.reshape(-1)[0])
            factor = dt(0 if s == 0 else 1 / s)
            mean, var = self.blobs[0].data * factor, self.blobs[1].data * factor
        else:
            m = x.shape[0] * x.shape[2]
            mean = np.einsum("ncl->nc", x).sum(axis=0) / dt(m)
            (squares,) = _channels.partial(x.shape, x.dtype)

            def center(i, cs):
                t = _channels.scratch(x[i, cs].shape, x.dtype)
                np.subtract(x[i, cs], mean[cs, None], out=t)
                _channels.dot(t, t, out=squares[i, cs])
            _channels.each(center, x.shape)
            var = squares.sum(axis=0) / dt(m)
            self._update_statistics(mean, var, m)
        self.std = np.sqrt(var + dt(self.eps))
        self.x_norm = None if self.use_global_stats else xn
        std, mean = self.std[:, None], mean[:, None]
        s = scale.blobs[0].data.reshape(-1, 1)
        bias = scale.blobs[1].data.reshape(-1, 1) if scale.bias_term else None
        slope = None if relu is None else relu.negative_slope

        prims = chain_forward(self, x.shape, bias is not None, slope) if x.dtype == np.float32 else None
        if prims is not None and self._outputs_finite(x, mean, std, s, bias):
            prims(x, xn, y, mean, std, s, bias)
            self.ran_blocked = scale.ran_blocked = True
            self.chain_engine = f"NumPy statistics, oneDNN element-wise ({prims.impl})"
            return True
        self.chain_engine = "NumPy, blocked"

        def normalize(i, cs):
            np.subtract(x[i, cs], mean[cs], out=xn[i, cs])
            np.divide(xn[i, cs], std[cs], out=xn[i, cs])
            np.multiply(xn[i, cs], s[cs], out=y[i, cs])
            if bias is not None:
                y[i, cs] += bias[cs]
            if slope is not None:
                piece = y[i, cs].reshape(-1)
                relu_piece(piece, piece, slope, True)
        _channels.each(normalize, x.shape)
        self.ran_blocked = scale.ran_blocked = True
        return True

    def _outputs_finite(self, x, mean, std, s, bias):
        """Whether every x_norm and y of the chain is finite, from per-channel values (and, with
        global statistics, x's extremes): where one could be NaN or infinite oneDNN's ReLU of
        slope 0 (max(s, 0), NaN -> 0) differs from Caffe's (NaN stays NaN, -inf gives NaN), so
        the NumPy passes run. With batch statistics a finite variance bounds |x_norm| by
        sqrt(m) (m values per channel: their squares sum to m var / (var + eps))."""
        vectors = [mean, std, s] + ([] if bias is None else [bias])
        if not all(np.isfinite(v).all() for v in vectors) or not std.min() > 0:
            return False
        if self.use_global_stats:
            lo, hi = float(x.min()), float(x.max())
            if not (math.isfinite(lo) and math.isfinite(hi)):
                return False
            norm = (max(-lo, hi) + float(np.abs(mean).max())) / float(std.min())
        else:
            norm = math.sqrt(x.shape[0] * x.shape[2])
        return norm * float(np.abs(s).max()) + (0.0 if bias is None else float(np.abs(bias).max())) < OUTPUT_BOUND

    def backward_chain(self, top, bottom, scale, relu=None):
        """The chain's backward, in two passes instead of five: per block the ReLU's gradient and
        the Scale's (its sums, and dy * s left in the blob's diff as the unfused Scale leaves it),
        with this layer's sums of that; then this layer's gradient. Every layer's arithmetic in
        its order, bit for bit the unfused result. Reads x_norm from the Scale's buffer (the
        forward, fused or not, leaves it there) and the ReLU's sign from the top. True where it
        ran; False (nothing done) where the arrays do not suit it."""
        dy, dx = self._view(top[0].diff), self._view(bottom[0].diff)
        xn = scale.x_copy
        if not isinstance(xn, np.ndarray) or xn.shape != dy.shape \
                or self._chain_arrays(bottom, top, scale, dy, dx) is None:
            return False
        y = self._view(top[0].data)
        s = scale.blobs[0].data.reshape(-1, 1)
        slope = None if relu is None else relu.negative_slope
        batch = not self.use_global_stats
        std = self.std[:, None]
        bias_sums, scale_dots, sums, dots = _channels.partial(dy.shape, dy.dtype, 4)

        def reduce(i, cs):
            g = dy[i, cs]
            if slope is not None:
                flat = g.reshape(-1)
                relu_grad(y[i, cs].reshape(-1), flat, flat, slope, True)
            if scale.bias_term:
                _channels.total(g, out=bias_sums[i, cs])
            _channels.dot(g, xn[i, cs], out=scale_dots[i, cs])
            np.multiply(g, s[cs], out=g)
            if batch:
                _channels.total(g, out=sums[i, cs])
                _channels.dot(g, xn[i, cs], out=dots[i, cs])
            else:
                np.divide(g, std[cs], out=dx[i, cs])
        _channels.each(reduce, dy.shape)
        if scale.bias_term:
            scale.blobs[1].diff += bias_sums.sum(axis=0).reshape(scale.blobs[1].shape)
        scale.blobs[0].diff += scale_dots.sum(axis=0).reshape(scale.blobs[0].shape)
        if batch:
            self._blocked_gradient(dy, dx, xn, sums, dots)
        return True

    def flops(self, bottom, top):
        return 2 * bottom[0].count
