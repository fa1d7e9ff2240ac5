"""Pooling (Caffe type "Pooling") over the two spatial axes of an NCHW blob.

pooling_param: pool (MAX, AVE; STOCHASTIC is not supported), kernel_size /
kernel_h / kernel_w, stride / stride_h / stride_w (1), pad / pad_h / pad_w (0),
global_pooling (kernel = the whole input), round_mode (CEIL, FLOOR).

Caffe's geometry: Ho = ceil((H + 2 pad - k) / stride) + 1 (floor with
round_mode FLOOR), minus one when padding and the last window would start in
the padding. MAX never picks padding; its optional second top is the argmax as
a float index into H*W. AVE divides by the window clipped to the padded image
(hend = min(hstart + k, H + pad)), so windows hanging over the far edge count
fewer cells. The CPU path loops over the k_h*k_w kernel offsets, each step a
vectorized pass over the whole batch.
"""
import itertools
import math

import numpy as np

from ..errors import PrototxtError
from ..im2col import valid_ranges
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
        if self.method == "AVE":
            y[...] = 0
            for _, _, region, src in self._offsets(x.shape):
                y[region] += x[src]
            y /= self._pool_sizes(x.shape).astype(y.dtype)
            return
        y[...] = -np.inf
        self.argmax = np.full(y.shape, -1, dtype=np.int32)    # kernel offset index of the max
        better = np.empty(y.shape, dtype=bool)
        for index, _, region, src in self._offsets(x.shape):
            np.greater(x[src], y[region], out=better[region])   # strict: the first max wins, as in Caffe
            np.copyto(y[region], x[src], where=better[region])
            self.argmax[region][better[region]] = index
        if len(top) > 1:
            top[1].data[...] = self._mask_indices(x.shape)

    def _mask_indices(self, shape):
        """Caffe's mask: the argmax as an index into H*W."""
        kh, kw = self.kernel
        (sh, sw), (ph, pw) = self.stride, self.pad
        rows = (np.arange(self.out_spatial[0]) * sh - ph)[:, None] + self.argmax // kw
        cols = (np.arange(self.out_spatial[1]) * sw - pw)[None, :] + self.argmax % kw
        return rows * shape[3] + cols

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx, dy = bottom[0].diff, top[0].diff
        dx[...] = 0
        if self.method == "AVE":
            dy = dy / self._pool_sizes(dx.shape).astype(dy.dtype)
            for _, _, region, src in self._offsets(dx.shape):
                dx[src] += dy[region]
            return
        for index, _, region, src in self._offsets(dx.shape):
            dx[src] += np.where(self.argmax[region] == index, dy[region], 0)

    def flops(self, bottom, top):
        return top[0].count * int(np.prod(self.kernel))
