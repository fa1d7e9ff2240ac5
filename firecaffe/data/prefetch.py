"""Decoding images ahead of the net, in background threads.

Pillow decodes and NumPy resizes with the GIL released, so a few threads decode
the next batch while the net computes the current one (Caffe's data layers
prefetch in a thread too). Only the decoding runs ahead: the random part of the
transformation (crop, mirror) is drawn when the batch is consumed, from the
global generator, so results do not depend on the prefetching.

A ``Prefetcher`` is asked for the samples it will be asked for next
(``ahead(indices)``) and then for the decoded images (``take(indices)``); a take
whose indices were not asked ahead (after a restored snapshot, say) decodes at
once. FIRECAFFE_DECODE_THREADS sets the number of threads (0: decode in the
calling thread, no prefetching).
"""
import atexit
import os
import weakref
from concurrent.futures import ThreadPoolExecutor

from ..core.options import environment

_POOLS = weakref.WeakSet()


def decode_threads():
    given = environment().decode_threads
    return min(4, os.cpu_count() or 1) if given is None else given


class Prefetcher:
    """Runs ``decode(index) -> array`` for whole batches of indices ahead of use."""

    def __init__(self, decode, threads=None):
        self.decode = decode
        self.threads = decode_threads() if threads is None else threads
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="firecaffe-decode") \
            if self.threads else None
        if self.pool is not None:
            _POOLS.add(self)
        self.pending = {}          # tuple(indices) -> list of futures

    def ahead(self, indices):
        """Start decoding the batch ``indices`` in the background."""
        key = tuple(int(i) for i in indices)
        if self.pool is None or key in self.pending:
            return
        while len(self.pending) >= 2:           # at most two batches in flight
            self.pending.pop(next(iter(self.pending)))
        self.pending[key] = [self.pool.submit(self.decode, i) for i in key]

    def take(self, indices):
        """The decoded images of ``indices``, in order (errors are raised here)."""
        key = tuple(int(i) for i in indices)
        futures = self.pending.pop(key, None)
        if futures is None:
            return [self.decode(i) for i in key]
        return [future.result() for future in futures]

    def close(self):
        if self.pool is not None:
            for futures in self.pending.values():
                for future in futures:
                    future.cancel()
            self.pending.clear()
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None


@atexit.register
def _close_all():
    for prefetcher in list(_POOLS):
        prefetcher.close()
