"""Pooling (Caffe type "Pooling") over the two spatial axes of an NCHW blob.

pooling_param: pool (MAX, AVE; STOCHASTIC is not supported), kernel_size /
kernel_h / kernel_w, stride / stride_h / stride_w (1), pad / pad_h / pad_w (0),
global_pooling (kernel = the whole input), round_mode (CEIL, FLOOR).

Caffe's geometry: Ho = ceil((H + 2 pad - k) / stride) + 1 (floor with
round_mode FLOOR), minus one when padding and the last window would start in
the padding. MAX never picks padding; its optional second top is the argmax as
a float index into H*W. AVE divides by the window clipped to the padded image
(hend = min(hstart + k, H + pad)), so windows hanging over the far edge count
fewer cells.

MAX keeps ``self.argmax`` for backward, on both paths in one encoding: the
kernel offset ``a * k_w + b`` of the first maximum in its window (a NaN never
wins; -1 where no input beat Caffe's start, -FLT_MAX in float and in double,
which the output then keeps); the mask top converts it to Caffe's H*W index. The CPU path
loops over the k_h*k_w kernel offsets, each step a vectorized pass over the
batch; the GPU path runs firecaffe/kernels/pooling.cu.
"""
import itertools
import math

import numpy as np

from ..core import backend
from ..errors import PrototxtError
from ..kernels import launch
from ._threads import CHUNK, elementwise, run_blocks
from . import dnnl
from .dnnl import pool as dnnl_pool
from .im2col import valid_ranges
from .neuron import relu_grad_piece
from . import Layer, register


def _pair(p, name, default):
    """(h, w) from ``name`` or ``name_h``/``name_w``; None if neither is given."""
    has_hw = p.HasField(f"{name}_h") or p.HasField(f"{name}_w")
    if has_hw:
        return int(getattr(p, f"{name}_h")), int(getattr(p, f"{name}_w"))
    if p.HasField(name if name != "kernel" else "kernel_size") or default is None:
        value = getattr(p, name if name != "kernel" else "kernel_size")
        return (int(value),) * 2
    return (default,) * 2


@register("Pooling")
class Pooling(Layer):
    exact_num_bottom = 1
    min_num_top = 1
    max_num_top = 2

    def layer_setup(self, bottom, top):
        p = self.param.pooling_param
        self.method = p.PoolMethod.Name(p.pool)
        if self.method not in ("MAX", "AVE"):
            self.fail(f"pool: {self.method} is not supported (use MAX or AVE)", PrototxtError)
        if len(top) > 1 and self.method != "MAX":
            self.fail("only MAX pooling has a second top (the argmax mask)", PrototxtError)
        self.global_pooling = p.global_pooling
        has_kernel = p.HasField("kernel_size") or p.HasField("kernel_h") or p.HasField("kernel_w")
        if self.global_pooling:
            if has_kernel:
                self.fail("with global_pooling the kernel size cannot be given", PrototxtError)
        elif p.HasField("kernel_size") == (p.HasField("kernel_h") or p.HasField("kernel_w")) or (
                not p.HasField("kernel_size") and not (p.HasField("kernel_h") and p.HasField("kernel_w"))):
            self.fail("give kernel_size, or both kernel_h and kernel_w", PrototxtError)
        if p.HasField("pad") and (p.HasField("pad_h") or p.HasField("pad_w")):
            self.fail("give pad, or pad_h and pad_w, not both", PrototxtError)
        if p.HasField("stride") and (p.HasField("stride_h") or p.HasField("stride_w")):
            self.fail("give stride, or stride_h and stride_w, not both", PrototxtError)
        if p.HasField("stride_h") != p.HasField("stride_w"):
            self.fail("stride_h and stride_w must be given together", PrototxtError)
        self.pad = _pair(p, "pad", 0)
        self.stride = _pair(p, "stride", 1)
        self.kernel = None if self.global_pooling else _pair(p, "kernel", None)
        if self.global_pooling and (self.pad != (0, 0) or self.stride != (1, 1)):
            self.fail(f"global pooling needs pad 0 and stride 1, got pad {self.pad}, stride {self.stride}",
                      PrototxtError)
        if self.kernel is not None and min(self.kernel) < 1:
            self.fail(f"kernel size must be > 0, got {self.kernel}", PrototxtError)
        if min(self.stride) < 1:
            self.fail(f"stride must be > 0, got {self.stride}", PrototxtError)
        if self.kernel is not None and any(q >= k for q, k in zip(self.pad, self.kernel)):
            self.fail(f"pad {self.pad} must be smaller than the kernel {self.kernel}", PrototxtError)
        self.floor = p.round_mode == p.FLOOR
        self.use_dnnl, self.dnnl_ran, self.workspace = dnnl.AVAILABLE and p.engine != p.CAFFE, False, None
        self.n_top = len(top)

    @property
    def engine_name(self):
        """oneDNN where the last forward ran on it (firecaffe/ops/dnnl/pool.py), else NumPy."""
        return dnnl.VERSION if self.dnnl_ran else "NumPy"

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) != 4:
            self.fail(f"input must have 4 axes (num, channels, height, width), got {shape}")
        if self.global_pooling:
            self.kernel = shape[2:]
        self.out_spatial = tuple(self._out_size(*a) for a in zip(shape[2:], self.kernel, self.pad, self.stride))
        for n_out, size, k, q, s in zip(self.out_spatial, shape[2:], self.kernel, self.pad, self.stride):
            if n_out < 1 or (n_out - 1) * s - q >= size:
                self.fail(f"kernel {self.kernel}, stride {self.stride}, pad {self.pad} do not fit "
                          f"input {shape}: some output windows would see no input")
        for t in top:
            t.reshape(shape[:2] + self.out_spatial)

    def _out_size(self, size, kernel, pad, stride):
        n_out = (math.floor if self.floor else math.ceil)((size + 2 * pad - kernel) / stride) + 1
        if pad and (n_out - 1) * stride >= size + pad:
            n_out -= 1      # the last window would start in the padding
        return n_out

    def _offsets(self, shape):
        """(offset index, output region, input slices) for every kernel offset."""
        for index, offsets in enumerate(itertools.product(*(range(k) for k in self.kernel))):
            ranges = valid_ranges(offsets, shape[2:], self.out_spatial, self.pad, self.stride, (1, 1))
            if all(hi > lo for lo, hi, _ in ranges):
                region = (Ellipsis,) + tuple(slice(lo, hi) for lo, hi, _ in ranges)
                yield index, offsets, region, (Ellipsis,) + tuple(src for _, _, src in ranges)

    def _pool_sizes(self, shape):
        """AVE divisors (Ho, Wo): window sizes clipped to the padded image."""
        sizes = []
        for n_out, size, k, q, s in zip(self.out_spatial, shape[2:], self.kernel, self.pad, self.stride):
            start = np.arange(n_out) * s - q
            sizes.append(np.minimum(start + k, size + q) - start)
        return np.multiply.outer(*sizes)

    def forward_cpu(self, bottom, top):
        x, y = bottom[0].data, top[0].data
        if dnnl_pool.forward(self, x, y):
            return
        whole = self._is_whole_window(x.shape)
        if self.method == "AVE":
            if whole:
                np.mean(x, axis=(2, 3), keepdims=True, out=y)
                return
            y[...] = 0
            for _, _, region, src in self._offsets(x.shape):
                y[region] += x[src]
            y /= self._pool_sizes(x.shape).astype(y.dtype)
            return
        if whole:
            flat = x.reshape(x.shape[:2] + (-1,))
            self.argmax = flat.argmax(axis=-1).astype(np.int32).reshape(y.shape)   # the first max
            y[...] = np.take_along_axis(flat, self.argmax.reshape(flat.shape[:2] + (1,)), -1).reshape(y.shape)
        else:
            self._max_forward(x, y)
        if len(top) > 1:
            top[1].data[...] = self._mask_indices(x.shape)

    def _is_whole_window(self, shape):
        """One window per channel that covers the whole image (global pooling)."""
        return self.out_spatial == (1, 1) and tuple(self.kernel) == tuple(shape[2:]) and self.pad == (0, 0)

    def _buffer(self, name, shape, dtype):
        """A scratch array kept on the layer between calls (reallocated on a new shape)."""
        array = getattr(self, name, None)
        if array is None or array.shape != shape or array.dtype != dtype:
            array = np.empty(shape, dtype=dtype)
            setattr(self, name, array)
        return array

    def _fill_planes(self, planes, x):
        """x padded with -inf and split by stride phase: planes[a, b] holds padded rows
        a, a + sh, ... and columns b, b + sw, ..., so that every kernel offset reads a
        window with contiguous rows (strided reads are several times slower in NumPy)."""
        (sh, sw), (ph, pw), (h, w) = self.stride, self.pad, x.shape[2:]
        hq, wq = planes.shape[-2:]
        for a in range(sh):
            for b in range(sw):
                # plane row q is padded row a + q*sh, input row a + q*sh - ph
                rows = valid_ranges((a,), (h,), (hq,), (ph,), (sh,), (1,))[0]
                cols = valid_ranges((b,), (w,), (wq,), (pw,), (sw,), (1,))[0]
                dst = planes[a, b]
                dst[:, :, rows[0]:rows[1], cols[0]:cols[1]] = x[:, :, rows[2], cols[2]]
                dst[:, :, :rows[0]] = -np.inf
                dst[:, :, rows[1]:] = -np.inf
                dst[:, :, :, :cols[0]] = -np.inf
                dst[:, :, :, cols[1]:] = -np.inf

    def _max_forward(self, x, y):
        """y = the max over the kernel offsets; argmax = the first offset that reaches it.
        Done sample by sample (the passes stay in cache), samples split over threads."""
        (kh, kw), (sh, sw) = self.kernel, self.stride
        (ho, wo), count = self.out_spatial, kh * kw
        hq, wq = (ho - 1) + -(-kh // sh), (wo - 1) + -(-kw // sw)
        n, c = x.shape[:2]
        planes = self._buffer("_plane_buffer", (sh, sw, n, c, hq, wq), x.dtype)
        self.argmax = self._buffer("_argmax_buffer", y.shape, np.int8 if count < 128 else np.int32)
        searching = self._buffer("_searching", y.shape, bool)
        below = self._buffer("_below", y.shape, bool)

        def work(nb, cb):
            step = max(1, (1 << 20) // max(1, x[0].nbytes))      # about 1 MiB of input per step
            samples = range(n)[nb]
            for first in range(samples.start, samples.stop, step):
                part = (slice(first, min(first + step, samples.stop)), cb)
                self._max_forward_part(x[part], y[part], planes[(slice(None),) * 2 + part],
                                       self.argmax[part], searching[part], below[part])

        run_blocks(work, n, c, x.nbytes)

    def _max_forward_part(self, x, y, planes, argmax, searching, below):
        (kh, kw), (sh, sw), (ho, wo) = self.kernel, self.stride, self.out_spatial
        self._fill_planes(planes, x)
        windows = [planes[i % sh, j % sw, :, :, i // sh:i // sh + ho, j // sw:j // sw + wo]
                   for i in range(kh) for j in range(kw)]
        # fmax: a NaN never wins a window, as in Caffe (its max starts below every number and
        # an input must compare greater to take it)
        np.fmax(windows[0], windows[-1], out=y) if len(windows) > 1 else np.copyto(y, windows[0])
        for window in windows[1:-1]:
            np.fmax(y, window, out=y)
        # argmax = the number of leading offsets not reaching the max (so the first max wins, as
        # in Caffe; a NaN does not reach it): counted with compares and adds, which NumPy does
        # faster than masked writes. For booleans, searching > reached is searching and not reached.
        argmax[...] = 0
        searching[...] = True
        for window in windows[:-1]:
            np.greater_equal(window, y, out=below)
            np.greater(searching, below, out=searching)
            np.add(argmax, searching, out=argmax)
        lowest = y.dtype.type(np.finfo(np.float32).min)     # Caffe's -FLT_MAX, in double too
        np.logical_not(np.greater(y, lowest, out=below), out=below)     # also NaN (a window of NaN)
        if below.any():                     # no input beat Caffe's start: it keeps that and mask -1
            y[below] = lowest
            argmax[below] = -1

    def _mask_indices(self, shape):
        """Caffe's mask: the argmax as an index into H*W (-1 where there is none)."""
        xp = backend.xp_of(self.argmax)
        kh, kw = self.kernel
        (sh, sw), (ph, pw) = self.stride, self.pad
        rows = (xp.arange(self.out_spatial[0]) * sh - ph)[:, None] + self.argmax // kw
        cols = (xp.arange(self.out_spatial[1]) * sw - pw)[None, :] + self.argmax % kw
        return xp.where(self.argmax >= 0, rows * shape[3] + cols, -1)

    def forward_gpu(self, bottom, top):
        x, y = bottom[0].data, top[0].data
        geometry = self._kernel_geometry(x.shape)
        if self.method == "AVE":
            launch("pooling", "ave_pool_forward", x.dtype, y.size, (x, y) + geometry)
            return
        self.argmax = backend.xp_of(x).empty(y.shape, dtype=np.int32)
        launch("pooling", "max_pool_forward", x.dtype, y.size, (x, y, self.argmax) + geometry)
        if len(top) > 1:
            top[1].data[...] = self._mask_indices(x.shape)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx, dy = bottom[0].diff, top[0].diff
        geometry = self._kernel_geometry(dx.shape)
        if self.method == "AVE":
            launch("pooling", "ave_pool_backward", dx.dtype, dx.size, (dy, dx) + geometry)
        else:
            launch("pooling", "max_pool_backward", dx.dtype, dx.size, (dy, self.argmax, dx) + geometry)

    def _kernel_geometry(self, shape):
        n, c, h, w = shape
        return tuple(np.int32(v) for v in (n * c, h, w) + tuple(self.out_spatial) + tuple(self.kernel)
                     + tuple(self.stride) + tuple(self.pad))

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            self._backward(top[0].diff, bottom[0].diff)

    def backward_relu(self, top, propagate_down, bottom, masked):
        """MAX pooling's backward with the backward of the in-place ReLU (slope 0) that made its
        bottom done as well (engine/fusion.py ``plan_bottom_relu``; ``masked`` is {0}). Max pooling
        commutes with that ReLU and routes each output's gradient to its window's maximum, whose
        value is the output's, so the ReLU's mask is read on the pooled top: dy * (y > 0), one pass
        over the top, then the pooling backward, instead of a pass over the (larger) bottom after
        it. Every gradient has the layers' value apart; only an exact zero's sign may differ (+0
        where the layers apart give -0 from a negative sum times 0). Only where no sum of routed
        gradients can overflow (every |dy| finite and below float32's largest over the windows
        that share an input); otherwise, and for arrays that are not C-contiguous NumPy ones,
        False: nothing done."""
        dy, y, dx = top[0].diff, top[0].data, bottom[0].diff
        if self.method != "MAX" or len(top) != 1 or not propagate_down[0] or masked != {0} \
                or not all(isinstance(a, np.ndarray) and a.flags.c_contiguous for a in (dy, y, dx)):
            return False
        if dy.size == 0:
            self.backward_cpu(top, propagate_down, bottom)
            return True
        g = self._buffer("_masked_diff", dy.shape, dy.dtype)
        sharing = math.prod(-(-k // s) for k, s in zip(self.kernel, self.stride))
        bound, over = np.finfo(dy.dtype).max / (2 * sharing), []

        def mask(a, d, out):
            if over or not (-bound < d.min() and d.max() < bound):      # NaN compares False too
                over.append(True)
            else:
                relu_grad_piece(a, d, out)

        elementwise(mask, y, dy, g, chunk=CHUNK)
        if over:
            return False
        self._backward(g, dx)
        return True

    def _backward(self, dy, dx):
        if dnnl_pool.backward(self, dy, dx):
            return
        if self.method == "AVE" and self._is_whole_window(dx.shape):
            np.multiply(dy, dx.dtype.type(1.0 / (dx.shape[2] * dx.shape[3])), out=dx)
            return
        dx[...] = 0
        if self.method == "AVE":
            dy = dy / self._pool_sizes(dx.shape).astype(dy.dtype)
            for _, _, region, src in self._offsets(dx.shape):
                dx[src] += dy[region]
            return
        self._max_backward(dy, dx)

    def _max_backward(self, dy, dx):
        """dx[argmax input] += dy: one scatter-add over the outputs. Indices are int32
        when the bottom allows (half the memory traffic of intp: pool1's index build
        19 ms instead of 26) and land in a buffer kept on the layer."""
        corners = self._flat_index(dx.shape)
        index = self._buffer("_index_buffer", corners.shape, corners.dtype)
        if self._is_whole_window(dx.shape):
            np.add(corners, self.argmax.reshape(-1), out=index, casting="unsafe")
        else:
            kh, kw = self.kernel
            lookup = np.array([i * dx.shape[3] + j for i in range(kh) for j in range(kw)] + [0],
                              dtype=corners.dtype)
            np.add(corners, lookup[self.argmax.reshape(-1)], out=index)   # -1 (no max) reads the trailing 0
        values = dy.reshape(-1)
        if (self.argmax < 0).any():
            values = np.where(self.argmax.reshape(-1) >= 0, values, 0)
        np.add.at(dx.reshape(-1), index, values)

    def _flat_index(self, shape):
        """Per output: the flat index into the bottom of its window's (top, left) corner
        (may lie in the pad); cached per shape."""
        cached = getattr(self, "_corner_cache", None)
        if cached is not None and cached[0] == shape:
            return cached[1]
        (sh, sw), (ph, pw) = self.stride, self.pad
        rows = np.arange(self.out_spatial[0]) * sh - ph
        cols = np.arange(self.out_spatial[1]) * sw - pw
        corners = rows[:, None] * shape[3] + cols[None, :]
        planes = np.arange(shape[0] * shape[1]) * (shape[2] * shape[3])
        dtype = np.int32 if int(np.prod(shape, dtype=np.int64)) < 2 ** 31 else np.intp
        index = (planes[:, None, None] + corners).astype(dtype).reshape(-1)
        self._corner_cache = (shape, index)
        return index

    def flops(self, bottom, top):
        return top[0].count * int(np.prod(self.kernel))
