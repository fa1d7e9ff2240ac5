"""Ring allreduce: reduce-scatter then allgather around the ranks, each step a Sendrecv.

The array is cut into p near-equal contiguous segments (some empty when the
array has fewer than p elements). In p-1 reduce-scatter steps every rank sends
one segment to its right neighbour and adds the one from its left, so that rank
r ends up owning the full sum of segment r+1; p-1 allgather steps then pass the
finished segments around. Each rank sends 2(p-1)/p of the array in all, the
bandwidth optimum, at the price of 2(p-1) latencies.
"""
import numpy as np

from .base import TAG_RING, Strategy, even_bounds


class RingAllreduce(Strategy):
    """Bandwidth-optimal ring allreduce (reduce-scatter + allgather).

    Cost: 2 (p-1) alpha + 2 (p-1)/p n beta + (p-1)/p n gamma; every rank is as
    busy as the busiest (it sends and receives 2 (p-1)/p n each).
    """

    name = "ring"
    order = 20

    def __init__(self, comm, **options):
        super().__init__(comm)
        self._scratch = np.empty(0, np.float32)

    def _allreduce(self, buf):
        size, rank = self.size, self.rank
        if size == 1:
            return
        bounds = even_bounds(buf.size, size)
        segment = [buf[bounds[i]:bounds[i + 1]] for i in range(size)]
        right, left = (rank + 1) % size, (rank - 1) % size
        scratch = self._scratch_for(bounds[1] - bounds[0] + 1, buf.dtype)
        for step in range(size - 1):
            outgoing, incoming = segment[(rank - step) % size], segment[(rank - step - 1) % size]
            received = scratch[:incoming.size]
            self.comm.Sendrecv(outgoing, dest=right, sendtag=TAG_RING,
                               recvbuf=received, source=left, recvtag=TAG_RING)
            np.add(incoming, received, out=incoming)
        for step in range(size - 1):
            self.comm.Sendrecv(segment[(rank + 1 - step) % size], dest=right, sendtag=TAG_RING,
                               recvbuf=segment[(rank - step) % size], source=left, recvtag=TAG_RING)

    def _scratch_for(self, length, dtype):
        """A receive buffer of at least ``length`` elements, kept for reuse."""
        if self._scratch.dtype != dtype or self._scratch.size < length:
            self._scratch = np.empty(length, dtype)
        return self._scratch

    @classmethod
    def cost_coefficients(cls, n, p, **options):
        if p == 1:
            return 0.0, 0.0, 0.0
        return 2.0 * (p - 1), 2.0 * (p - 1) / p * n, (p - 1) / p * n

    @classmethod
    def busiest_rank(cls, n, p, **options):
        if p == 1:
            return 0.0, 0.0, 0.0
        return 2.0 * (p - 1), 4.0 * (p - 1) / p * n, (p - 1) / p * n

    @classmethod
    def messages(cls, p, **options):
        return 2 * p * (p - 1)
