"""im2col / col2im for N-d convolution on NumPy arrays (the CPU path).

A column buffer holds, for every output position, the input patch it sees:
row ``(c, k_1, ..., k_d)``, column ``(n, o_1, ..., o_d)``. Two memory orders:

- ``batch_major=True``:  shape ``(N, C*K, L)``, a batched GEMM per sample lands
  straight in the NCHW output;
- ``batch_major=False``: shape ``(C*K, N*L)``, one large GEMM over the whole batch.

(K = prod(kernel), L = prod(output spatial).) Both are filled through one
``(N, C, *kernel, *out)`` view, one strided copy per kernel offset; padding is
never materialised: each copy takes the valid output range of its offset and
zeroes the border strips. Work is split over a few threads (NumPy releases the
GIL in copies and adds), by samples, or by channels when the batch is small.
"""
import itertools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_THREADS = max(1, min(os.cpu_count() or 1, 8))
_MIN_PARALLEL_BYTES = 1 << 20
_executor = None


def out_size(size, kernel, pad, stride, dilation=1):
    """Caffe's convolution output size (floor); may be < 1 for a bad geometry."""
    extent = dilation * (kernel - 1) + 1
    return (size + 2 * pad - extent) // stride + 1


def _parallel(fn, n_batch, n_chan, nbytes):
    """Run ``fn(batch_slice, channel_slice)`` over disjoint parts of the work."""
    global _executor
    if _THREADS == 1 or nbytes < _MIN_PARALLEL_BYTES:
        fn(slice(None), slice(None))
        return
    if _executor is None:
        _executor = ThreadPoolExecutor(_THREADS, thread_name_prefix="firecaffe-im2col")
    if n_batch >= _THREADS:
        edges = np.linspace(0, n_batch, _THREADS + 1).astype(int)
        parts = [(slice(a, b), slice(None)) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    else:
        edges = np.linspace(0, n_chan, min(_THREADS, n_chan) + 1).astype(int)
        parts = [(slice(None), slice(a, b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    for future in [_executor.submit(fn, *p) for p in parts]:
        future.result()


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

    _parallel(work, n, c, col.nbytes)
    return col


def col2im(col, x_shape, kernel, pad, stride, dilation, out_shape, batch_major=True, out=None):
    """Sum columns back into an array of ``x_shape`` (the adjoint of im2col).

    Overwrites ``out`` when given (Caffe's backward overwrites bottom diffs).
    """
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

    _parallel(work, n, c, col.nbytes)
    return out
