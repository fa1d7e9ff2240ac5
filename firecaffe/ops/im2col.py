"""im2col / col2im for N-d convolution on NumPy arrays (the CPU path).

A column buffer holds, for every output position, the input patch it sees:
row ``(c, k_1, ..., k_d)``, column ``(n, o_1, ..., o_d)``. Two memory orders:

- ``batch_major=True``:  shape ``(N, C*K, L)``, a batched GEMM per sample lands
  straight in the NCHW output;
- ``batch_major=False``: shape ``(C*K, N*L)``, one large GEMM over the whole batch.

(K = prod(kernel), L = prod(output spatial).) Both are filled through one
``(N, C, *kernel, *out)`` view, one strided copy per kernel offset; padding is
never materialised: each copy takes the valid output range of its offset and
zeroes the border strips. Work is split over the layers' thread pool
(``_threads.run_blocks``: by samples, or by channels when the batch is small).

``im2col`` and ``col2im`` take NumPy or CuPy arrays and choose by the array's
module: the host code above, or the kernels of firecaffe/kernels/im2col.cu
(grid-stride, 1-d and 2-d; only the ``batch_major=False`` layout). Device
arrays with more spatial axes make their columns on the host, correct but slow.
"""
import itertools

import numpy as np

from ..core import backend
from ..kernels import launch
from ._threads import run_blocks


def out_size(size, kernel, pad, stride, dilation=1):
    """Caffe's convolution output size (floor); may be < 1 for a bad geometry."""
    extent = dilation * (kernel - 1) + 1
    return (size + 2 * pad - extent) // stride + 1


def valid_ranges(offsets, in_shape, out_shape, pad, stride, dilation):
    """For one kernel offset, per spatial axis: ``(lo, hi, src)``, where outputs
    ``lo:hi`` read inputs ``src`` (a strided slice) and the other outputs read padding."""
    result = []
    for k, size, n_out, p, s, d in zip(offsets, in_shape, out_shape, pad, stride, dilation):
        shift = k * d - p                      # input index = o * s + shift
        lo = max(0, -(shift // s)) if shift < 0 else 0
        hi = min(n_out, (size - 1 - shift) // s + 1) if size - 1 - shift >= 0 else 0
        hi = max(hi, lo)
        start = lo * s + shift
        result.append((lo, hi, slice(start, start + (hi - lo - 1) * s + 1, s) if hi > lo else slice(0, 0)))
    return result


def _col_view(col, shape, kernel, out_shape, batch_major):
    n, c = shape[:2]
    if batch_major:
        return col.reshape((n, c) + tuple(kernel) + tuple(out_shape))
    d = len(kernel)
    view = col.reshape((c,) + tuple(kernel) + (n,) + tuple(out_shape))
    return view.transpose((d + 1, 0) + tuple(range(1, d + 1)) + tuple(range(d + 2, 2 * d + 2)))


def im2col(x, kernel, pad, stride, dilation, out_shape, batch_major=True, col=None):
    """Columns of ``x`` (N, C, *spatial); reuses ``col`` when it has the right size."""
    if backend.xp_of(x) is not np:
        return _im2col_device(x, kernel, pad, stride, dilation, out_shape, batch_major, col)
    n, c = x.shape[:2]
    k_count = int(np.prod(kernel))
    length = int(np.prod(out_shape))
    shape = (n, c * k_count, length) if batch_major else (c * k_count, n * length)
    if col is None or col.shape != shape or col.dtype != x.dtype:
        col = np.empty(shape, dtype=x.dtype)
    view = _col_view(col, x.shape, kernel, out_shape, batch_major)

    def work(nb, cb):
        for offsets in itertools.product(*(range(k) for k in kernel)):
            ranges = valid_ranges(offsets, x.shape[2:], out_shape, pad, stride, dilation)
            dst = view[(nb, cb) + offsets]
            dst[(Ellipsis,) + tuple(slice(lo, hi) for lo, hi, _ in ranges)] = \
                x[(nb, cb) + tuple(src for _, _, src in ranges)]
            for axis, (lo, hi, _) in enumerate(ranges):     # outputs that read padding
                if lo > 0 or hi < out_shape[axis]:
                    lead = (slice(None),) * (2 + axis)
                    dst[lead + (slice(0, lo),)] = 0
                    dst[lead + (slice(hi, None),)] = 0

    run_blocks(work, n, c, col.nbytes)
    return col


def col2im(col, x_shape, kernel, pad, stride, dilation, out_shape, batch_major=True, out=None):
    """Sum columns back into an array of ``x_shape`` (the adjoint of im2col).

    Overwrites ``out`` when given (Caffe's backward overwrites bottom diffs).
    """
    if backend.xp_of(col) is not np:
        return _col2im_device(col, x_shape, kernel, pad, stride, dilation, out_shape, batch_major, out)
    n, c = x_shape[:2]
    if out is None:
        out = np.empty(x_shape, dtype=col.dtype)
    view = _col_view(col, x_shape, kernel, out_shape, batch_major)

    def work(nb, cb):
        dst = out[nb, cb]
        dst[...] = 0
        for offsets in itertools.product(*(range(k) for k in kernel)):
            ranges = valid_ranges(offsets, x_shape[2:], out_shape, pad, stride, dilation)
            if any(hi <= lo for lo, hi, _ in ranges):
                continue
            dst[(Ellipsis,) + tuple(src for _, _, src in ranges)] += \
                view[(nb, cb) + offsets][(Ellipsis,) + tuple(slice(lo, hi) for lo, hi, _ in ranges)]

    run_blocks(work, n, c, col.nbytes)
    return out


# --- device arrays: the kernels ------------------------------------------------------
def _as_2d(spatial, kernel, pad, stride, dilation, out_shape):
    """1-d geometry as 2-d with a height of one; 2-d unchanged; None otherwise."""
    if len(spatial) == 1:
        return tuple((1 if i != 2 else 0,) + tuple(v) for i, v in
                     enumerate((spatial, kernel, pad, stride, dilation, out_shape)))
    return (spatial, kernel, pad, stride, dilation, out_shape) if len(spatial) == 2 else None


def _kernel_args(x_shape, geometry):
    (h, w), (kh, kw), (ph, pw), (sh, sw), (dh, dw), (oh, ow) = geometry
    return tuple(np.int32(v) for v in (x_shape[0], x_shape[1], h, w, kh, kw, ph, pw, sh, sw,
                                       dh, dw, oh, ow))


def _im2col_device(x, kernel, pad, stride, dilation, out_shape, batch_major, col):
    if batch_major:
        raise ValueError("im2col of a device array builds (C*K, N*L) columns only")
    xp = backend.xp_of(x)
    n, c = x.shape[:2]
    shape = (c * int(np.prod(kernel)), n * int(np.prod(out_shape)))
    if col is None or col.shape != shape or col.dtype != x.dtype:
        col = xp.empty(shape, dtype=x.dtype)
    geometry = _as_2d(tuple(x.shape[2:]), kernel, pad, stride, dilation, out_shape)
    if geometry is None:
        col[...] = xp.asarray(im2col(xp.asnumpy(x), kernel, pad, stride, dilation, out_shape, False))
        return col
    x = xp.ascontiguousarray(x)
    launch("im2col", "im2col", x.dtype, c * shape[1], (x, col) + _kernel_args(x.shape, geometry))
    return col


def _col2im_device(col, x_shape, kernel, pad, stride, dilation, out_shape, batch_major, out):
    if batch_major:
        raise ValueError("col2im of a device array takes (C*K, N*L) columns only")
    xp = backend.xp_of(col)
    if out is None:
        out = xp.empty(x_shape, dtype=col.dtype)
    geometry = _as_2d(tuple(x_shape[2:]), kernel, pad, stride, dilation, out_shape)
    if geometry is None:
        out[...] = xp.asarray(col2im(xp.asnumpy(col), tuple(x_shape), kernel, pad, stride, dilation,
                                     out_shape, False))
        return out
    launch("im2col", "col2im", col.dtype, int(np.prod(x_shape)),
           (xp.ascontiguousarray(col), out) + _kernel_args(x_shape, geometry))
    return out
