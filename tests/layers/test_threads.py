"""The one thread pool of the memory-bound layers (firecaffe/ops/_threads.py)."""
import threading

import numpy as np

from firecaffe.ops import _threads


def test_elementwise_covers_every_element_once(monkeypatch):
    from firecaffe.ops import _threads
    monkeypatch.setattr(_threads, "CHUNK", 7)
    monkeypatch.setattr(_threads, "MIN_PARALLEL", 10)
    monkeypatch.setattr(_threads, "ELTWISE_THREADS", 3)
    a = np.zeros((5, 11, 3))
    _threads.elementwise(lambda part: np.add(part, 1, out=part), a)
    np.testing.assert_array_equal(a, 1.0)


def test_run_parts_covers_the_range_once_in_grain_aligned_pieces(monkeypatch):
    monkeypatch.setattr(_threads, "ELTWISE_THREADS", 3)
    seen, lock = [], threading.Lock()

    def part(lo, hi):
        with lock:
            seen.append((lo, hi))
    _threads.run_parts(part, 100, min_n=10, grain=8)
    seen.sort()
    assert len(seen) == 3 and seen[0][0] == 0 and seen[-1][1] == 100
    assert all(a[1] == b[0] for a, b in zip(seen, seen[1:])) and all(lo % 8 == 0 for lo, _ in seen)


def test_run_blocks_splits_by_samples_or_by_channels(monkeypatch):
    monkeypatch.setattr(_threads, "COPY_THREADS", 2)
    monkeypatch.setattr(_threads, "MIN_PARALLEL_BYTES", 0)
    for n_batch, n_chan in ((4, 3), (1, 5)):
        hits = np.zeros((n_batch, n_chan), dtype=int)

        def block(nb, cb):
            hits[nb, cb] += 1          # disjoint blocks: no lock needed
        _threads.run_blocks(block, n_batch, n_chan, nbytes=1)
        np.testing.assert_array_equal(hits, 1)


def test_one_executor_serves_every_layer(monkeypatch):
    monkeypatch.setattr(_threads, "ELTWISE_THREADS", 2)
    monkeypatch.setattr(_threads, "COPY_THREADS", 2)
    monkeypatch.setattr(_threads, "MIN_PARALLEL_BYTES", 0)
    names = set()

    def record(*_):
        names.add(threading.current_thread().name.rsplit("_", 1)[0])
    _threads.run_parts(record, 10, min_n=1)
    _threads.run_blocks(record, 4, 1, nbytes=1)
    assert names == {"firecaffe-layers"}
