"""The engine of the pipelined trees (tree, dbtree): chunks up a tree, sums down it, one event loop.

A rank's part in one tree is a ``TreePipe``: it receives its children's chunks
(a window of ``WINDOW`` receive buffers per child), adds them in child order
(a deterministic sum), sends each summed chunk to its parent, receives the
chunk's total back and passes it to its children; the root turns each summed
chunk around. Every request of every pipe of the rank sits in one ``EventLoop``
that handles them in the order they complete, so no rank waits on one message
while another it could act on has arrived.

Over a network a pipe sends chunk k up only once the total of chunk
k - credits has come back (``base.credits_to``): MPI over TCP sends eagerly,
whether or not the parent has posted a receive, so without this bound a leaf,
all of whose chunks are ready at once, floods its parent's link and starves the
sibling subtree the parent must add it to. On 4 emulated nodes at 100 Mb/s the
binomial tree's root then sat idle on its outgoing link for half of the
reduction (docs/scaling.md).
"""
import numpy as np

from .base import Strategy
from .compress.links import PlainLink
from .polite import waitany
from .tags import PIPELINE_BASE as TAG_BASE
from .topology import chunk_slices, credits_to, pipeline_chunk_bytes, spans_nodes, tag_bound

WINDOW = 2                           # chunks in flight from each child (receive buffers)
UP, DOWN = 0, 1


class PipelinedTrees(Strategy):
    """A strategy that runs one or more pipelined trees over parts of the array (no ``name``: not registered).

    ``chunk_bytes`` defaults to 512 KiB when every rank shares one node's memory
    and 128 KiB when the ranks span nodes (``base.pipeline_chunk_bytes``);
    ``credits``: "auto" bounds the chunks waiting for their total toward a
    parent on another node (``base.NETWORK_CREDITS``) and not through shared
    memory, an int bounds them toward any parent, 0 never.
    """

    wire_codecs = True

    def __init__(self, comm, chunk_bytes=None, credits="auto", **options):
        super().__init__(comm, **options)
        self.nodes, self.spans_nodes = spans_nodes(comm)
        self.chunk_bytes = chunk_bytes or pipeline_chunk_bytes(self.spans_nodes)
        self.credits = credits
        self._scratch = {}

    def _pipelines(self, buf):
        """``[(slice of buf, parent, children)]``: this rank's place in each tree."""
        raise NotImplementedError

    def _allreduce(self, buf, link=None):
        if self.size == 1 or not buf.size:
            return
        link = link or PlainLink(buf)
        chunk = max(1, self.chunk_bytes // buf.itemsize, -(-buf.size // max_chunks(self.comm)))
        loop = EventLoop(sleep=self.wait == "sleep")
        for index, (part, parent, children) in enumerate(self._pipelines(buf)):
            if part.stop > part.start:
                credits = credits_to(parent, self.nodes, self.rank, self.credits)
                TreePipe(self, loop, index, link.part(part), parent, children, chunk, credits).start()
        loop.run()

    def scratch(self, key, length, dtype):
        """``WINDOW`` receive buffers for ``key`` (tree, child), kept for reuse."""
        if key not in self._scratch or self._scratch[key][0].size < length or self._scratch[key][0].dtype != dtype:
            self._scratch[key] = [np.empty(length, dtype) for _ in range(WINDOW)]
        return self._scratch[key]


def max_chunks(comm):
    """Chunks per half that keep every tag below MPI's limit."""
    return max(1, (tag_bound(comm) - TAG_BASE) // 4 - 1)


class EventLoop:
    """Pending requests, each with what to do when it completes; ``run`` until none is left."""

    def __init__(self, sleep=False):
        self.requests, self.callbacks = [], []
        self.sleep = sleep           # wait by testing and sleeping (a strategy's wait="sleep"), not in MPI's Waitany

    def post(self, request, callback=None):
        self.requests.append(request)
        self.callbacks.append(callback)

    def run(self):
        from mpi4py import MPI
        wait = waitany if self.sleep else MPI.Request.Waitany
        while self.requests:
            index = wait(self.requests)
            self.requests.pop(index)
            callback = self.callbacks.pop(index)
            if callback:
                callback()


class TreePipe:
    """One rank's part in one tree: add the children's chunks, send them up, pass results down."""

    def __init__(self, owner, loop, tree, link, parent, children, chunk, credits=None):
        self.comm, self.loop, self.tree = owner.comm, loop, tree
        self.link, self.parent, self.children = link, parent, children
        self.chunks = chunk_slices(link.buf.size, chunk)
        self.buffers = [owner.scratch((tree, i), link.landing_length(chunk), link.landing_dtype)
                        for i in range(len(children))]
        self.results_in = {}       # k -> what chunk k's total came down in (sent on as it came)
        self.arrived = [[False] * len(children) for _ in self.chunks]
        self.added = [0] * len(self.chunks)
        self.credits, self.ready, self.returned, self.results = credits, [], [False] * len(self.chunks), 0

    def tag(self, k, direction):
        return TAG_BASE + 4 * k + 2 * self.tree + direction

    def start(self):
        for k in range(min(WINDOW, len(self.chunks))):
            self.receive_children(k)
        if not self.children:
            for k in range(len(self.chunks)):
                self.summed(k)

    def receive_children(self, k):
        for index in range(len(self.children)):
            self.receive_child(index, k)

    def receive_child(self, index, k):
        piece = self.chunks[k]
        landing = self.buffers[index][k % WINDOW][:self.link.landing_length(piece.stop - piece.start)]
        self.loop.post(self.comm.Irecv(landing, source=self.children[index], tag=self.tag(k, UP)),
                       lambda: self.arrive(index, k))

    def arrive(self, index, k):
        """Child ``index``'s chunk k is in: add every chunk k now next in child order (a deterministic sum)."""
        self.arrived[k][index] = True
        piece = self.chunks[k]
        length = self.link.landing_length(piece.stop - piece.start)
        while self.added[k] < len(self.children) and self.arrived[k][self.added[k]]:
            child = self.added[k]
            self.link.add(piece, self.buffers[child][k % WINDOW][:length])
            self.added[k] += 1
            if k + WINDOW < len(self.chunks):     # its buffer is free for chunk k + WINDOW
                self.receive_child(child, k + WINDOW)
        if self.added[k] == len(self.children):
            self.summed(k)

    def summed(self, k):
        """Chunk k holds this subtree's sum: send it up (as the credits allow), or, at the root, start it down."""
        if self.parent is None:
            self.send_down(k)
        else:
            self.ready.append(k)
            self.send_up()

    def send_up(self):
        """Send summed chunks up while fewer than ``credits`` of them wait for their result (tree.py says why)."""
        while self.ready and (self.credits is None or self.ready[0] < self.results + self.credits):
            k = self.ready.pop(0)
            # The result comes back into the same memory: receive only once the send has left it.
            self.loop.post(self.comm.Isend(self.link.outgoing(self.chunks[k]), dest=self.parent, tag=self.tag(k, UP)),
                           lambda k=k: self.receive_result(k))

    def receive_result(self, k):
        target = self.results_in[k] = self.link.result_target(self.chunks[k])
        request = self.comm.Irecv(target, source=self.parent, tag=self.tag(k, DOWN))
        self.loop.post(request, lambda k=k: self.result(k))

    def result(self, k):
        """The sum of chunk k is in: pass it down, and let the next summed chunks go up."""
        self.returned[k] = True
        while self.results < len(self.chunks) and self.returned[self.results]:
            self.results += 1
        self.link.settle(self.chunks[k], self.results_in[k])
        self.send_down(k, self.results_in.pop(k))
        self.send_up()

    def send_down(self, k, piece=None):
        """Pass chunk k's total to the children: as it came down, or (the root) as it finished here."""
        if piece is None:
            piece = self.link.finish(self.chunks[k])
        for child in reversed(self.children):
            self.loop.post(self.comm.Isend(piece, dest=child, tag=self.tag(k, DOWN)))
