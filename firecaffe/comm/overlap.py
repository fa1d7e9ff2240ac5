"""Reduce gradient buckets while backward is still running.

The gradient arena is laid out in reverse layer order, so backward fills it from
the front: once it has written up to element ``offset_end``, every bucket that
ends at or before that offset is final and can be summed across ranks while the
remaining layers compute.

Threading: one background thread per reducer takes buckets from a queue and
reduces them in arena order with the strategy's blocking ``allreduce_``. Every
rank enqueues the same buckets in the same order, so the collective calls match
across ranks. NumPy's kernels and MPI's blocking calls release the GIL, so the
thread really runs beside backward. MPI calls from two threads need
``MPI_THREAD_MULTIPLE``, which mpi4py requests by default; if the library
granted less, nothing runs in the background and ``wait()`` reduces every
bucket itself. While buckets are in flight the communicator belongs to the
reducer: the training loop makes no other MPI call on it until ``wait()``.

The thread's strategy waits ``wait="sleep"`` (comm/polite.py): its waits sleep
between tests instead of spinning in MPICH's progress loop, which on shared
cores took as much CPU from backward as the overlap hid. ``wait="spin"``
(``FIRECAFFE_BUCKET_WAIT=spin``) keeps MPI's own blocking waits (to measure the
difference, launch/overlap_links.sh). Each reduced bucket fires the ``span`` hook.

Compression (``--compress``) happens inside the strategy's ``allreduce_`` of each bucket, so
on this thread too: a bucket is encoded, sent and decoded while backward goes on. The
codec cuts the buckets (``codec.bucket_slices``: PowerSGD keeps each matrix whole in one).
"""
import queue
import threading
import time
from typing import NamedTuple

from ..core.hooks import Hooks

DEFAULT_BUCKET_BYTES = 4 * 2**20


class OverlapStats(NamedTuple):
    comm_s: float     # seconds spent in allreduce_ over all buckets
    hidden_s: float   # of those, seconds that elapsed before wait() was called (behind backward)
    cpu_s: float      # CPU seconds the reducing thread used (user + system), waiting included


class BucketReducer:
    """Sums ``flat_diff`` across ranks in contiguous buckets of about ``bucket_bytes``."""

    def __init__(self, strategy, flat_diff, bucket_bytes=DEFAULT_BUCKET_BYTES, wait="sleep", hooks=None):
        self.flat_diff = flat_diff
        self.buckets = strategy.codec.bucket_slices(flat_diff.size, max(1, bucket_bytes // flat_diff.itemsize))
        from mpi4py import MPI
        self.threaded = MPI.Query_thread() == MPI.THREAD_MULTIPLE
        # the thread's waits sleep unless told to spin (an unthreaded reducer waits on the main thread)
        self.strategy = strategy.waiting(wait) if self.threaded else strategy
        self.hooks = hooks if hooks is not None else Hooks("span")
        self._next = 0          # first bucket not yet handed out this iteration
        self._spans = []        # (start, end) perf_counter of each reduced bucket
        self._cpu_s = 0.0       # thread CPU time spent in _reduce this iteration
        self._error = None
        self._queue = queue.Queue()
        if self.threaded:
            threading.Thread(target=self._reduce_forever, name="firecaffe-bucket-reducer",
                             daemon=True).start()

    def ready(self, offset_end):
        """Backward has written ``flat_diff[:offset_end]``: start on the buckets it covers."""
        while self._next < len(self.buckets) and self.buckets[self._next].stop <= offset_end:
            if self.threaded:
                self._queue.put(self.buckets[self._next])
            self._next += 1

    def wait(self):
        """Finish every bucket of this iteration; return its OverlapStats."""
        called = time.perf_counter()
        if self.threaded:
            self.ready(self.flat_diff.size)
            self._queue.join()
        else:
            for bucket in self.buckets:
                self._reduce(bucket)
        self._next = 0
        spans, self._spans = self._spans, []
        cpu_s, self._cpu_s = self._cpu_s, 0.0
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return OverlapStats(comm_s=sum(end - start for start, end in spans),
                            hidden_s=sum(max(0.0, min(end, called) - start) for start, end in spans),
                            cpu_s=cpu_s)

    def close(self):
        """Stop the background thread (after the last ``wait()``)."""
        if self.threaded:
            self._queue.put(None)

    def _reduce(self, bucket):
        start, cpu = time.perf_counter_ns(), time.thread_time()
        self.strategy.allreduce_(self.flat_diff[bucket], at=bucket.start)
        end = time.perf_counter_ns()
        self._spans.append((start / 1e9, end / 1e9))
        self._cpu_s += time.thread_time() - cpu
        if self.hooks["span"]:            # the timeline listens
            elements = bucket.stop - bucket.start
            self.hooks.fire("span", f"bucket {self.buckets.index(bucket)}", "bucket", start, end,
                              {"elements": elements, "bytes": elements * self.flat_diff.itemsize})

    def _reduce_forever(self):
        while (bucket := self._queue.get()) is not None:
            try:
                if self._error is None:  # after a failure the rest is skipped; wait() raises it
                    self._reduce(bucket)
            except BaseException as error:  # noqa: BLE001 - raised in the training loop by wait()
                self._error = error
            finally:
                self._queue.task_done()
        self._queue.task_done()
