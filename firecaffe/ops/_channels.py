"""Per-channel passes over (outer, channels, inner) NumPy arrays in cache-sized blocks.

BatchNorm and Scale are memory bound: a full-size pass per NumPy call (subtract
the mean, square, divide, copy for backward, add the bias) read and wrote the
whole activation 5-10 times and allocated full-size temporaries. Here each
pass walks (sample, channel range) blocks of about ``BLOCK`` elements and runs
all its element-wise steps on one block while it is in cache; per-channel sums
are taken per block (``partial``) and added up over the samples afterwards.
Blocks are independent, so they are shared out like the other element-wise
layers (``_threads.run_parts``: FIRECAFFE_ELTWISE_THREADS, default one thread).
"""
import threading

import numpy as np

from ._threads import run_parts

BLOCK = 1 << 16              # elements per block: 256 KiB of float32 (a few of them stay in L2)

_local = threading.local()


class Blocked:
    """A layer with blocked passes: ``blocked`` False runs its reference passes, and
    ``engine_name`` (`firecaffe time`) says which ran last."""
    blocked = True
    ran_blocked = False

    @property
    def engine_name(self):
        return "NumPy, blocked" if self.ran_blocked else "NumPy"


def usable(*arrays):
    """True where the arrays are C-contiguous NumPy arrays (the blocked path)."""
    return all(isinstance(a, np.ndarray) and a.flags.c_contiguous for a in arrays)


def blocks(shape):
    """(outer index, channel slice) blocks covering an (outer, channels, inner) array."""
    outer, chans, inner = shape
    per = max(1, BLOCK // max(inner, 1))
    return [(i, slice(c, min(c + per, chans))) for i in range(outer) for c in range(0, chans, per)]


def each(fn, shape):
    """Call ``fn(i, cs)`` for every block of ``shape`` (threads share the blocks)."""
    parts = blocks(shape)

    def run(lo, hi):
        for i, cs in parts[lo:hi]:
            fn(i, cs)
    run_parts(run, len(parts), min_n=2)


def partial(shape, dtype, count=1):
    """``count`` zeroed (outer, channels) arrays for per-block sums."""
    return [np.zeros(shape[:2], dtype) for _ in range(count)]


def dot(a, b, out):
    """out[c] = sum over the last axis of a[c] * b[c], with no temporary."""
    np.einsum("cl,cl->c", a, b, out=out)


def total(a, out):
    """out[c] = sum over the last axis of a[c] (einsum: 3-4x faster than ndarray.sum
    on the short rows of late layers, e.g. 7x7)."""
    np.einsum("cl->c", a, out=out)


def scratch(shape, dtype):
    """A reused per-thread scratch array of ``shape`` (at most a block)."""
    n = int(np.prod(shape))
    buf = getattr(_local, "buf", None)
    if buf is None or buf.dtype != dtype or buf.size < n:
        buf = _local.buf = np.empty(max(n, BLOCK), dtype)
    return buf[:n].reshape(shape)


def buffer(holder, name, shape, dtype):
    """``holder.name``: a kept array of ``shape`` and ``dtype``, made anew only when those change."""
    buf = getattr(holder, name, None)
    if not isinstance(buf, np.ndarray) or buf.shape != tuple(shape) or buf.dtype != dtype:
        buf = np.empty(shape, dtype)
        setattr(holder, name, buf)
    return buf
