"""Which samples a rank reads: one global stream of samples cut into global
batches, each rank taking a contiguous slice of every global batch.

With p ranks of batch b, global batch t covers stream positions
[t*b*p, (t+1)*b*p) and rank r reads positions [t*b*p + r*b, t*b*p + (r+1)*b).
Stream position s is sample s mod N of epoch s // N: the sample itself when
reading in order, or entry s mod N of that epoch's permutation when shuffling.
Every rank computes the same permutation from the same seed, so one rank with
batch b*p reads exactly what p ranks with batch b read together.
"""
import numpy as np

from ..errors import DataError


class ShardCursor:
    """The read position of a data layer over ``num_samples`` samples.

    ``order(epoch) -> array of num_samples indices`` gives the read order of an
    epoch when shuffling (None reads in stored order); it must depend only on
    the epoch, so that a resumed run reads what the original one would have.
    """

    def __init__(self, num_samples, batch_size, shard=(0, 1), order=None, position=0):
        rank, size = (int(v) for v in shard)
        if not 0 <= rank < size:
            raise DataError(f"bad shard {shard!r}: rank must be in [0, size)")
        if num_samples <= 0:
            raise DataError("the data source holds no samples")
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)
        self.rank, self.size = rank, size
        self.order = order
        self.position = int(position)       # first stream position of the next global batch
        self._orders = {}                   # epoch -> permutation, a small cache

    @property
    def global_batch(self):
        return self.batch_size * self.size

    def peek(self):
        """The sample indices this rank reads in the next batch (no advance)."""
        stream = self.position + self.rank * self.batch_size + np.arange(self.batch_size, dtype=np.int64)
        offsets = stream % self.num_samples
        if self.order is None:
            return offsets
        epochs = stream // self.num_samples
        out = np.empty_like(offsets)
        for epoch in np.unique(epochs):
            hit = epochs == epoch
            out[hit] = self._order(int(epoch))[offsets[hit]]
        return out

    def next(self):
        """The sample indices of this rank's next batch; moves to the next global batch."""
        indices = self.peek()
        self.position += self.global_batch
        return indices

    def _order(self, epoch):
        if epoch not in self._orders:
            if len(self._orders) >= 3:
                self._orders.pop(min(self._orders))
            order = np.asarray(self.order(epoch), dtype=np.int64)
            if order.shape != (self.num_samples,):
                raise AssertionError("an epoch's order must list every sample once")
            self._orders[epoch] = order
        return self._orders[epoch]


def runs(indices):
    """Split ``indices`` into maximal runs of consecutive values: [(start, stop, at)],
    ``at`` being where the run begins in ``indices``."""
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size == 0:
        return []
    breaks = np.nonzero(np.diff(indices) != 1)[0] + 1
    starts = np.concatenate(([0], breaks))
    stops = np.concatenate((breaks, [indices.size]))
    return [(int(indices[a]), int(indices[b - 1]) + 1, int(a)) for a, b in zip(starts, stops)]
