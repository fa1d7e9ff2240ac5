"""The one thread pool of the memory-bound CPU layers.

NumPy releases the GIL inside its loops, so large copies and element-wise passes
can be shared out over threads. Two ways to cut the work, on one executor:

- ``run_blocks(fn, n_batch, n_chan, nbytes)``: (sample slice, channel slice)
  blocks, ``COPY_THREADS`` of them (im2col/col2im and max pooling: strided
  copies, measured faster with a thread per core);
- ``run_parts(fn, n)`` / ``elementwise(fn, *arrays)``: ranges of a flat index,
  ``ELTWISE_THREADS`` of them (ReLU, Concat/Slice/Split copies).

``ELTWISE_THREADS`` comes from FIRECAFFE_ELTWISE_THREADS and defaults to 1:
alone, 2 threads nearly halve a 100 MB ReLU on the 2-core benchmark machine,
but inside a net the layer follows a convolution whose OpenBLAS threads still
spin on the other core, and there (and under load) 2 threads measured no faster
or slightly slower. Where a pass needs a scratch mask it is cut into pieces of
``CHUNK`` elements whose mask stays in cache (``scratch_mask``).
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..core.options import environment

COPY_THREADS = max(1, min(os.cpu_count() or 1, 8))
ELTWISE_THREADS = environment().eltwise_threads
CHUNK = 1 << 17                  # elements per piece with a scratch mask: 512 KiB of float32
MIN_PARALLEL = 1 << 18           # elements below which run_parts does it all in one call
MIN_PARALLEL_BYTES = 1 << 20     # bytes below which run_blocks does it all in one call

_pool = {"pid": None, "executor": None}
_local = threading.local()


def _executor():
    """The shared executor, made on first use (and again in a forked child)."""
    if _pool["pid"] != os.getpid():
        _pool["executor"] = ThreadPoolExecutor(max(COPY_THREADS, ELTWISE_THREADS),
                                               thread_name_prefix="firecaffe-layers")
        _pool["pid"] = os.getpid()
    return _pool["executor"]


def _run_all(calls):
    futures = [_executor().submit(fn, *args) for fn, args in calls]
    for future in futures:
        future.result()


def run_parts(fn, n, min_n=None, grain=1):
    """Call ``fn(lo, hi)`` over disjoint ranges covering ``range(n)``, one per
    thread (range starts on multiples of ``grain``), or once for the whole
    range when ``n < min_n`` (default ``MIN_PARALLEL``) or there is one
    thread. ``fn`` must be safe to run concurrently on disjoint ranges."""
    threads = ELTWISE_THREADS
    if threads == 1 or n < (MIN_PARALLEL if min_n is None else min_n) or n <= grain:
        fn(0, n)
        return
    step = -(-n // (threads * grain)) * grain
    _run_all([(fn, (lo, min(lo + step, n))) for lo in range(0, n, step)])


def run_blocks(fn, n_batch, n_chan, nbytes):
    """Call ``fn(batch_slice, channel_slice)`` over disjoint blocks of an (N, C, ...)
    array: by samples when there are enough of them, else by channels."""
    threads = COPY_THREADS
    if threads == 1 or nbytes < MIN_PARALLEL_BYTES:
        fn(slice(None), slice(None))
        return
    if n_batch >= threads:
        edges = np.linspace(0, n_batch, threads + 1).astype(int)
        parts = [(slice(a, b), slice(None)) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    else:
        edges = np.linspace(0, n_chan, min(threads, n_chan) + 1).astype(int)
        parts = [(slice(None), slice(a, b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    _run_all([(fn, p) for p in parts])


def elementwise(fn, *arrays, chunk=None):
    """Call ``fn(*parts)`` over matching parts of the flattened, C-contiguous
    NumPy ``arrays`` (all of one size), split between threads when the arrays
    are large, and within a thread into pieces of ``chunk`` elements when
    given (so that a scratch array ``fn`` makes per part stays in cache).
    ``fn`` must treat each part on its own (element-wise), so the parts may
    run in any order, concurrently."""
    flat = [a.reshape(-1) for a in arrays]
    n = flat[0].size
    chunk = chunk or n or 1

    def run(lo, hi):
        for s in range(lo, hi, chunk):
            e = min(s + chunk, hi)
            fn(*[a[s:e] for a in flat])

    run_parts(run, n, grain=min(chunk, 1 << 12))


_ZEROS = {}


def zeros(n, dtype):
    """A read-only array of ``n`` zeros of ``dtype`` (at least ``CHUNK``, shared): np.maximum(a, zeros)
    gives np.maximum(a, 0) bit for bit (+0 for -0 as well) in a fifth of the time, NumPy 2.4 having
    no vector loop for a scalar operand of maximum."""
    dtype = np.dtype(dtype)
    buf = _ZEROS.get(dtype)
    if buf is None or buf.size < n:
        buf = np.zeros(max(n, CHUNK, 1 << 16), dtype)
        buf.flags.writeable = False
        _ZEROS[dtype] = buf
    return buf[:n]


def scratch_mask(n):
    """A reused per-thread boolean scratch array of ``n`` elements (``n`` at most
    ``CHUNK`` in the chunked passes, so it stays small and in cache)."""
    buf = getattr(_local, "mask", None)
    if buf is None or buf.size < n:
        buf = _local.mask = np.empty(max(n, CHUNK), dtype=bool)
    return buf[:n]
