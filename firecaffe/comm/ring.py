"""Ring allreduce: reduce-scatter then allgather around the ranks, each step a Sendrecv.

The array is cut into p near-equal contiguous segments (some empty when the
array has fewer than p elements). In p-1 reduce-scatter steps every rank sends
one segment to its right neighbour and adds the one from its left, so that rank
r ends up owning the full sum of segment r+1; p-1 allgather steps then pass the
finished segments around. Each rank sends 2(p-1)/p of the array in all, the
bandwidth optimum, at the price of 2(p-1) latencies.

Across nodes the steps are streamed: the segment a rank sends at step t + 1 is
the one it received (and added to) at step t, so each segment is cut into
chunks and chunk j goes on as soon as chunk j of the step before is in. No link
then waits at a step boundary for the slowest rank of the ring to finish its
step, which over TCP on a busy machine cost every one of the 2(p-1) steps (see
docs/scaling.md). Inside one node the plain loop of Sendrecvs stays: there a
hand-off needs the peer scheduled, and waiting on the one message that comes
next makes fewer hand-offs (the binomial tree's in-order loop, same reason).
"""
import math

import numpy as np

from .base import Strategy
from .compress.links import PlainLink
from .tags import RING as TAG_RING, RING_STREAM_BASE as TAG_STREAM
from .topology import even_bounds, layout_chunk_bytes, pipeline_chunk_bytes, spans_nodes, tag_bound



class RingAllreduce(Strategy):
    """Bandwidth-optimal ring allreduce (reduce-scatter + allgather).

    Cost: 2 (p-1) m alpha + 2 (p-1)/p n beta + (p-1)/p n gamma, m = 1 on one
    node and a segment's chunks across nodes; every rank is as busy as the
    busiest (it sends and receives 2 (p-1)/p n each). ``stream``: "auto"
    (chunks across nodes), True or False; ``chunk_bytes``: the chunk (default
    as the pipelined trees': 128 KiB across nodes).
    """

    name = "ring"
    order = 20
    wire_codecs = True

    def __init__(self, comm, chunk_bytes=None, stream="auto", **options):
        super().__init__(comm, **options)
        self._scratch = np.empty(0, np.float32)
        across = spans_nodes(comm)[1]
        self.stream = across if stream == "auto" else bool(stream)
        self.chunk_bytes = chunk_bytes or pipeline_chunk_bytes(across)
        self._tags_per_step = (tag_bound(comm) - TAG_STREAM) // max(1, 2 * (comm.Get_size() - 1)) - 1

    def _allreduce(self, buf, link=None):
        size, rank = self.size, self.rank
        if size == 1:
            return
        link = link or PlainLink(buf)
        if self.stream and buf.size >= size and self._tags_per_step >= 1:
            self._allreduce_streamed(buf, link)
            return
        bounds = even_bounds(buf.size, size)
        segment = [slice(bounds[i], bounds[i + 1]) for i in range(size)]
        right, left = (rank + 1) % size, (rank - 1) % size
        scratch = self._scratch_for(link.landing_length(bounds[1] - bounds[0] + 1), link.landing_dtype)
        for step in range(size - 1):
            outgoing, incoming = segment[(rank - step) % size], segment[(rank - step - 1) % size]
            received = scratch[:link.landing_length(incoming.stop - incoming.start)]
            self.comm.Sendrecv(link.outgoing(outgoing), dest=right, sendtag=TAG_RING,
                               recvbuf=received, source=left, recvtag=TAG_RING)
            link.add(incoming, received)
        carried = link.finish(segment[(rank + 1) % size])     # the segment this rank summed last
        for step in range(size - 1):
            incoming = segment[(rank - step) % size]
            received = link.result_target(incoming)
            self.comm.Sendrecv(carried, dest=right, sendtag=TAG_RING,
                               recvbuf=received, source=left, recvtag=TAG_RING)
            link.settle(incoming, received)
            carried = received

    def _allreduce_streamed(self, buf, link):
        """The same ring with every segment in chunks, each passed on as soon as it is in."""
        from .pipeline import EventLoop
        size, rank, comm = self.size, self.rank, self.comm
        bounds = even_bounds(buf.size, size)
        segment = [buf[bounds[i]:bounds[i + 1]] for i in range(size)]
        right, left, steps, adding = (rank + 1) % size, (rank - 1) % size, 2 * (size - 1), size - 1
        longest = max(bounds[i + 1] - bounds[i] for i in range(size))
        chunk = max(1, self.chunk_bytes // buf.itemsize, -(-longest // self._tags_per_step))
        per_step = -(-longest // chunk)
        # every segment in the same number of pieces (a segment is one element longer than another
        # at most), so that piece j of one step and piece j of the next pair up
        pieces = [[slice(a, b) for a, b in zip(cuts, cuts[1:])]
                  for cuts in (even_bounds(part.size, per_step) for part in segment)]
        # a landing slot per (step parity, piece): piece j of step t + 1 lands where piece j of step
        # t - 1 did, which was added in before piece j of step t (that posts it) came in
        slot = link.landing_length(-(-longest // per_step))
        scratch = self._scratch_for(2 * per_step * slot, link.landing_dtype)

        def whole(i, j):    # piece j of segment i, as a slice of buf
            return slice(bounds[i] + pieces[i][j].start, bounds[i] + pieces[i][j].stop)
        results = {}        # (segment, piece) -> its total as it came in (sent on as it came)

        def sent(t):        # the segment step t sends; step t + 1 sends the one step t received
            return (rank - t) % size if t < adding else (rank + 1 - (t - adding)) % size

        def received(t):    # reduce-scatter steps add it in, allgather steps receive it in place
            return (rank - t - 1) % size if t < adding else (rank - (t - adding)) % size

        loop, in_flight, deferred = EventLoop(sleep=self.wait == "sleep"), {}, {}

        def send(t, j):
            key = (sent(t), j)
            in_flight[key] = in_flight.get(key, 0) + 1
            if t < adding:
                message = link.outgoing(whole(*key))         # a partial sum
            elif t == adding:
                message = link.finish(whole(*key))           # the total this rank completed
            else:
                message = results.pop(key)                   # a total, passed on as it came
            loop.post(comm.Isend(message, dest=right, tag=TAG_STREAM + t * per_step + j),
                      lambda: send_done(key))

        def send_done(key):
            in_flight[key] -= 1
            if not in_flight[key] and key in deferred:
                deferred.pop(key)()

        def receive(t, j):
            where, tag = pieces[received(t)][j], TAG_STREAM + t * per_step + j
            if t < adding:
                offset = ((t % 2) * per_step + j) * slot
                landing = scratch[offset:offset + link.landing_length(where.stop - where.start)]
                loop.post(comm.Irecv(landing, source=left, tag=tag), lambda: arrived(t, j, landing))
                return
            key = (received(t), j)

            def post():     # in place, so only once every send from this memory has left
                target = results[key] = link.result_target(whole(*key))
                loop.post(comm.Irecv(target, source=left, tag=tag), lambda: arrived(t, j, None))
            if in_flight.get(key):
                deferred[key] = post
            else:
                post()

        def arrived(t, j, landing):
            if landing is not None:
                link.add(whole(received(t), j), landing)
            else:
                link.settle(whole(received(t), j), results[(received(t), j)])
            if t + 1 < steps:
                send(t + 1, j)
                receive(t + 1, j)

        for j in range(per_step):
            send(0, j)
            receive(0, j)
        loop.run()

    def _scratch_for(self, length, dtype):
        """A receive buffer of at least ``length`` elements, kept for reuse."""
        if self._scratch.dtype != dtype or self._scratch.size < length:
            self._scratch = np.empty(length, dtype)
        return self._scratch

    @classmethod
    def chunks_per_step(cls, n, p, chunk_bytes=None, ranks_per_node=1):
        """Messages per step: one per segment on one node, a segment's chunks across nodes (streamed)."""
        if ranks_per_node >= p:
            return 1
        return max(1, math.ceil(n / p / layout_chunk_bytes(chunk_bytes, p, ranks_per_node)))

    @classmethod
    def cost_coefficients(cls, n, p, chunk_bytes=None, ranks_per_node=1, **options):
        if p == 1:
            return 0.0, 0.0, 0.0
        steps = 2.0 * (p - 1) * cls.chunks_per_step(n, p, chunk_bytes, ranks_per_node)
        return steps, 2.0 * (p - 1) / p * n, (p - 1) / p * n

    @classmethod
    def busiest_rank(cls, n, p, chunk_bytes=None, ranks_per_node=1, **options):
        if p == 1:
            return 0.0, 0.0, 0.0
        steps = 2.0 * (p - 1) * cls.chunks_per_step(n, p, chunk_bytes, ranks_per_node)
        return steps, 4.0 * (p - 1) / p * n, (p - 1) / p * n

    @classmethod
    def messages(cls, p, n=0, chunk_bytes=None, ranks_per_node=1, **options):
        return 2 * p * (p - 1) * cls.chunks_per_step(n, p, chunk_bytes, ranks_per_node)

