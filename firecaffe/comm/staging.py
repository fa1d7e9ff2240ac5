"""Buffers MPI may use for an array: NumPy arrays as they are, CuPy arrays through pinned host memory.

A CuPy array's stream is synchronized first (MPI must not read memory a kernel still writes).
With a CUDA-aware MPI (``cuda_aware``, from ``FIRECAFFE_CUDA_AWARE_MPI=1`` through the run's
options) and a caller that allows it (``device_ok``), the device array itself goes to MPI.
"""
import contextlib

import numpy as np


@contextlib.contextmanager
def staged(flat, device_ok, download=True, upload=True, pinned=None, slot=0):
    """Yield a buffer MPI may use for ``flat``; copy the result back on exit.

    ``device_ok``: the device array itself may be yielded (a CUDA-aware MPI and a call that
    needs no host arithmetic); otherwise a pinned host buffer (slot ``slot`` of the cache
    ``pinned``, kept for reuse), filled from the device if ``download`` and copied back to it
    if ``upload``.
    """
    if isinstance(flat, np.ndarray):
        yield flat
        return
    import cupy
    stream = cupy.cuda.get_current_stream()
    stream.synchronize()
    if device_ok:
        yield flat
        return
    host = _pinned_buffer({} if pinned is None else pinned, slot, flat.size, flat.dtype)
    if download:
        flat.get(out=host)
    yield host
    if upload:
        flat.set(host)
        stream.synchronize()


def _pinned_buffer(cache, slot, size, dtype):
    """``size`` elements of pinned host memory, grown as needed and reused across calls."""
    nbytes = size * np.dtype(dtype).itemsize
    if slot not in cache or cache[slot][1] < nbytes:
        import cupy
        cache[slot] = (cupy.cuda.alloc_pinned_memory(nbytes), nbytes)
    return np.frombuffer(cache[slot][0], dtype, size)
