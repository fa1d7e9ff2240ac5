"""Double binary tree: two pipelined binary trees, each reducing and broadcasting half of the array.

A single binary tree is log-deep but wastes half the links: a leaf only ever
sends its sum up and receives the result down, while an inner node carries
three times as much. Two trees fix that (the idea NCCL uses): tree 1 is the
in-order binary tree over the ranks, whose inner nodes are exactly the odd
ranks; tree 2 is tree 1 with every rank shifted by one, so its inner nodes are
even ranks. Every rank is an inner node in at most one tree, and a leaf in the
other. Each tree carries half of the array, in chunks, reduce and broadcast
pipelined; so every rank's link carries about 2n bytes each way (ring: 2(p-1)/p n)
at a depth of log2 p instead of p.

In the in-order tree, rank r has label r+1; the root of a range of labels is
the label with the most trailing zero bits, and the ranges left and right of
it form its two subtrees.
"""
import math

import numpy as np

from .base import Strategy, chunk_slices

TAG_BASE = 1000                      # tags TAG_BASE + 4 * chunk + 2 * tree + direction
DEFAULT_CHUNK_BYTES = 256 * 1024
WINDOW = 2                           # chunks in flight from each child (receive buffers)
UP, DOWN = 0, 1


def inorder_tree(size):
    """``(parents, children)`` lists of the in-order binary tree over ``size`` ranks (inner nodes: odd ranks)."""
    parents, children = [None] * size, [[] for _ in range(size)]

    def build(low, high, parent):          # ranks low..high-1
        if low >= high:
            return
        root = max(range(low, high), key=lambda rank: (rank + 1) & -(rank + 1))
        parents[root] = parent
        if parent is not None:
            children[parent].append(root)
        build(low, root, root)
        build(root + 1, high, root)
    build(0, size, None)
    return parents, children


def double_trees(size):
    """The two trees: ``[(parents, children)]``, the second shifted by one rank."""
    parents, children = inorder_tree(size)

    def shift(rank):
        return None if rank is None else (rank + 1) % size
    shifted_parents, shifted_children = [None] * size, [[] for _ in range(size)]
    for rank in range(size):
        shifted_parents[shift(rank)] = shift(parents[rank])
        shifted_children[shift(rank)] = [shift(child) for child in children[rank]]
    return [(parents, children), (shifted_parents, shifted_children)]


class DoubleTreeAllreduce(Strategy):
    """Allreduce over two binary trees, half of the array each, pipelined in chunks of ``chunk_bytes``."""

    name = "dbtree"
    order = 15

    def __init__(self, comm, chunk_bytes=DEFAULT_CHUNK_BYTES, **options):
        super().__init__(comm)
        self.chunk_bytes = chunk_bytes
        self.trees = double_trees(self.size)
        self._scratch = {}

    def _allreduce(self, buf):
        if self.size == 1 or not buf.size:
            return
        half = buf.size // 2
        halves = [buf[:half], buf[half:]]
        chunk = max(1, self.chunk_bytes // buf.itemsize, -(-buf.size // max_chunks(self.comm)))
        loop = EventLoop()
        for index, ((parents, children), part) in enumerate(zip(self.trees, halves)):
            if part.size:
                TreePipe(self, loop, index, part, parents[self.rank], children[self.rank], chunk).start()
        loop.run()

    def scratch(self, key, length, dtype):
        """``WINDOW`` receive buffers for ``key`` (tree, child), kept for reuse."""
        if key not in self._scratch or self._scratch[key][0].size < length or self._scratch[key][0].dtype != dtype:
            self._scratch[key] = [np.empty(length, dtype) for _ in range(WINDOW)]
        return self._scratch[key]


    @classmethod
    def cost_coefficients(cls, n, p, chunk_bytes=DEFAULT_CHUNK_BYTES, **options):
        if p == 1 or n == 0:
            return 0.0, 0.0, 0.0
        messages, carried, added = busiest_link(n, p, chunk_bytes)
        fill = 2 * depth(p)                  # the last chunk climbs one tree and comes down again
        chunk = min(chunk_bytes, n / 2)
        return float(messages + fill), float(carried + fill * chunk), float(added)

    @classmethod
    def busiest_rank(cls, n, p, chunk_bytes=DEFAULT_CHUNK_BYTES, **options):
        if p == 1:
            return 0.0, 0.0, 0.0
        messages, carried, added = busiest_link(n, p, chunk_bytes)
        return 2.0 * messages, 2.0 * carried, float(added)

    @classmethod
    def messages(cls, p, n=0, chunk_bytes=DEFAULT_CHUNK_BYTES, **options):
        return 2 * (p - 1) * 2 * max(1, math.ceil(n / 2 / chunk_bytes))

    @classmethod
    def totals(cls, n, p, **options):
        if p == 1:
            return 0.0, 0.0, 0.0
        return float(cls.messages(p, n=n, **options)), 2.0 * (p - 1) * n, float((p - 1) * n)


def busiest_link(n, p, chunk_bytes=DEFAULT_CHUNK_BYTES):
    """``(messages, bytes, bytes added)`` of the rank whose link carries most, each way (in = out).

    A rank sends each chunk of a half once to its parent and once to each child,
    and receives as many; an inner node adds its children's halves.
    """
    halves = (n / 2, n / 2)
    chunks = [max(1, math.ceil(half / chunk_bytes)) for half in halves]
    worst = (0, 0.0, 0.0)
    for rank in range(p):
        links = [(parents[rank] is not None) + len(children[rank]) for parents, children in double_trees(p)]
        load = (sum(k * l for k, l in zip(chunks, links)), sum(h * l for h, l in zip(halves, links)),
                sum(h * len(children[rank]) for h, (_, children) in zip(halves, double_trees(p))))
        worst = max(worst, load, key=lambda item: item[1])
    return worst


def depth(p):
    """Levels of the in-order tree over p ranks."""
    return max(0, p.bit_length() - 1)


def max_chunks(comm):
    """Chunks per half that keep every tag below MPI's limit."""
    from mpi4py import MPI
    return max(1, (comm.Get_attr(MPI.TAG_UB) - TAG_BASE) // 4 - 1)


class EventLoop:
    """Pending requests, each with what to do when it completes; ``run`` until none is left."""

    def __init__(self):
        self.requests, self.callbacks = [], []

    def post(self, request, callback=None):
        self.requests.append(request)
        self.callbacks.append(callback)

    def run(self):
        from mpi4py import MPI
        while self.requests:
            index = MPI.Request.Waitany(self.requests)
            self.requests.pop(index)
            callback = self.callbacks.pop(index)
            if callback:
                callback()


class TreePipe:
    """One rank's part in one tree: add the children's chunks, send them up, pass results down."""

    def __init__(self, owner, loop, tree, part, parent, children, chunk):
        self.comm, self.loop, self.tree = owner.comm, loop, tree
        self.part, self.parent, self.children = part, parent, children
        self.chunks = chunk_slices(part.size, chunk)
        self.buffers = [owner.scratch((tree, i), chunk, part.dtype) for i in range(len(children))]
        self.arrived = [0] * len(self.chunks)

    def tag(self, k, direction):
        return TAG_BASE + 4 * k + 2 * self.tree + direction

    def start(self):
        for k in range(min(WINDOW, len(self.chunks))):
            self.receive_children(k)
        if not self.children:
            for k in range(len(self.chunks)):
                self.summed(k)

    def receive_children(self, k):
        piece = self.chunks[k]
        for index, child in enumerate(self.children):
            landing = self.buffers[index][k % WINDOW][:piece.stop - piece.start]
            self.loop.post(self.comm.Irecv(landing, source=child, tag=self.tag(k, UP)), lambda k=k: self.arrive(k))

    def arrive(self, k):
        """A child's chunk k is in; once all are, add them in child order (a deterministic sum)."""
        self.arrived[k] += 1
        if self.arrived[k] < len(self.children):
            return
        piece = self.part[self.chunks[k]]
        for buffers in self.buffers:
            np.add(piece, buffers[k % WINDOW][:piece.size], out=piece)
        if k + WINDOW < len(self.chunks):
            self.receive_children(k + WINDOW)
        self.summed(k)

    def summed(self, k):
        """Chunk k holds this subtree's sum: send it up, or, at the root, start it down."""
        piece = self.part[self.chunks[k]]
        if self.parent is None:
            self.send_down(k)
        else:
            # The result comes back into the same memory: receive only once the send has left it.
            self.loop.post(self.comm.Isend(piece, dest=self.parent, tag=self.tag(k, UP)),
                           lambda k=k: self.receive_result(k))

    def receive_result(self, k):
        request = self.comm.Irecv(self.part[self.chunks[k]], source=self.parent, tag=self.tag(k, DOWN))
        self.loop.post(request, lambda k=k: self.send_down(k))

    def send_down(self, k):
        piece = self.part[self.chunks[k]]
        for child in reversed(self.children):
            self.loop.post(self.comm.Isend(piece, dest=child, tag=self.tag(k, DOWN)))
