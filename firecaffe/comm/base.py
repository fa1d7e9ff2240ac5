"""The interface every gradient-reduction strategy implements, and what they share.

A communicator sums a contiguous 1-D array in place across the worker ranks of
an mpi4py communicator (``allreduce_``) and copies one rank's array to all
(``broadcast_``). Gradients travel as buffers: only mpi4py's upper-case methods
(Send, Recv, Isend, Irecv, Sendrecv, Allreduce, Bcast), never serialized objects.

CuPy arrays are handed to MPI through ``staged``: the current stream is
synchronized and the data goes through a pinned host buffer, or straight to MPI
when ``FIRECAFFE_CUDA_AWARE_MPI=1`` says the MPI library reads device memory.
"""
import contextlib
import os

import numpy as np

# Message tags, one per kind of traffic, so that strategies never mix messages.
TAG_TREE_REDUCE = 11
TAG_TREE_BCAST = 12
TAG_RING = 13
TAG_PS_PUSH = 21
TAG_PS_PULL = 22
TAG_PS_STOP = 23

REDUCIBLE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class Communicator:
    """Sums and broadcasts flat arrays across the ranks of ``comm``.

    A subclass fills in ``_allreduce(buf)`` on a host (or CUDA-aware) buffer;
    ``broadcast_`` defaults to the library's Bcast. ``arithmetic_on_host`` says
    the strategy adds buffers itself, so device arrays are always staged.
    """

    arithmetic_on_host = True

    def __init__(self, comm):
        self.comm = comm
        self._pinned = {}  # slot -> (pinned memory, its size in bytes)

    @property
    def rank(self):
        return self.comm.Get_rank()

    @property
    def size(self):
        return self.comm.Get_size()

    def allreduce_(self, flat):
        """Replace ``flat`` on every rank by the sum of all ranks' ``flat``."""
        check_flat(flat)
        with self.staged(flat, device_ok=not self.arithmetic_on_host) as buf:
            self._allreduce(buf)

    def broadcast_(self, flat, root=0):
        """Replace ``flat`` on every rank by root's ``flat``."""
        check_flat(flat)
        with self.staged(flat, device_ok=True, download=self.rank == root, upload=self.rank != root) as buf:
            self._broadcast(buf, root)

    def _allreduce(self, buf):
        raise NotImplementedError

    def _broadcast(self, buf, root):
        self.comm.Bcast(buf, root=root)

    @contextlib.contextmanager
    def staged(self, flat, device_ok, download=True, upload=True, slot=0):
        """Yield a buffer MPI may use for ``flat``; copy the result back on exit.

        NumPy arrays are yielded as they are. For a CuPy array the stream is
        synchronized first (MPI must not read memory a kernel still writes);
        with a CUDA-aware MPI and ``device_ok`` the array itself is yielded,
        otherwise pinned host buffer number ``slot`` (kept for reuse), filled
        from the device if ``download`` and copied back to it if ``upload``.
        """
        if isinstance(flat, np.ndarray):
            yield flat
            return
        import cupy
        stream = cupy.cuda.get_current_stream()
        stream.synchronize()
        if device_ok and os.environ.get("FIRECAFFE_CUDA_AWARE_MPI") == "1":
            yield flat
            return
        host = self._pinned_buffer(slot, flat.size, flat.dtype)
        if download:
            flat.get(out=host)
        yield host
        if upload:
            flat.set(host)
            stream.synchronize()

    def _pinned_buffer(self, slot, size, dtype):
        """``size`` elements of pinned host memory, grown as needed and reused across calls."""
        nbytes = size * np.dtype(dtype).itemsize
        if slot not in self._pinned or self._pinned[slot][1] < nbytes:
            import cupy
            self._pinned[slot] = (cupy.cuda.alloc_pinned_memory(nbytes), nbytes)
        return np.frombuffer(self._pinned[slot][0], dtype, size)


def check_flat(flat):
    """Raise ValueError unless ``flat`` is a contiguous 1-D float32/float64 array."""
    if flat.ndim != 1 or not flat.flags.c_contiguous or flat.dtype not in REDUCIBLE_DTYPES:
        raise ValueError(
            "communicators work on contiguous 1-D float32/float64 arrays, got "
            f"shape {flat.shape} dtype {flat.dtype} contiguous={flat.flags.c_contiguous}")


def chunk_slices(size, chunk):
    """Contiguous slices of at most ``chunk`` elements covering ``range(size)``."""
    return [slice(start, min(start + chunk, size)) for start in range(0, size, chunk)]


def even_bounds(size, parts):
    """``parts + 1`` offsets splitting ``range(size)`` into near-equal contiguous parts."""
    return [part * size // parts for part in range(parts + 1)]
