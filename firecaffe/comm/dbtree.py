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
it form its two subtrees, except that a root is never the last label of a
range of three or more (that rule alone roots a power-of-two range at its end,
with one child). On 4 ranks the rule alone gives a star (rank 1 links to the
other three) and, shifted, another (rank 2): those two ranks carry 2n each
way, 1.33x a ring's 1.5n. With it both trees are paths, every rank has three
links in all, and every link carries 1.5n, the ring's bytes. From 5 ranks on,
some rank has four links in any two binary trees whose inner nodes differ
(the links of both trees, 4(p - 1), exceed 3p), and the in-order pair reaches that.
"""
import math

from .topology import NETWORK_CHUNK_BYTES, layout_chunk_bytes
from .pipeline import PipelinedTrees

def inorder_tree(size):
    """``(parents, children)`` lists of the in-order binary tree over ``size`` ranks (inner nodes: odd ranks)."""
    parents, children = [None] * size, [[] for _ in range(size)]

    def zeros(rank):
        return (rank + 1) & -(rank + 1)

    def build(low, high, parent):          # ranks low..high-1
        if low >= high:
            return
        root = max(range(low, high), key=zeros)
        if root == high - 1 and high - low > 2:
            root = max(range(low, high - 1), key=zeros)
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

class DoubleTreeAllreduce(PipelinedTrees):
    """Allreduce over two binary trees, half of the array each, pipelined in chunks of ``chunk_bytes``."""

    name = "dbtree"
    order = 15

    def __init__(self, comm, **options):
        super().__init__(comm, **options)
        self.trees = double_trees(self.size)

    def _pipelines(self, buf):
        half = buf.size // 2
        return [(part, parents[self.rank], children[self.rank])
                for (parents, children), part in zip(self.trees, (slice(0, half), slice(half, buf.size)))]

    @classmethod
    def cost_coefficients(cls, n, p, chunk_bytes=None, ranks_per_node=1, **options):
        if p == 1 or n == 0:
            return 0.0, 0.0, 0.0
        chunk_bytes = layout_chunk_bytes(chunk_bytes, p, ranks_per_node)
        messages, carried, added = busiest_link(n, p, chunk_bytes)
        fill = 2 * depth(p)                  # the last chunk climbs one tree and comes down again
        chunk = min(chunk_bytes, n / 2)
        return float(messages + fill), float(carried + fill * chunk), float(added)

    @classmethod
    def busiest_rank(cls, n, p, chunk_bytes=None, ranks_per_node=1, **options):
        if p == 1:
            return 0.0, 0.0, 0.0
        chunk_bytes = layout_chunk_bytes(chunk_bytes, p, ranks_per_node)
        messages, carried, added = busiest_link(n, p, chunk_bytes)
        return 2.0 * messages, 2.0 * carried, float(added)

    @classmethod
    def messages(cls, p, n=0, chunk_bytes=None, ranks_per_node=1, **options):
        chunk_bytes = layout_chunk_bytes(chunk_bytes, p, ranks_per_node)
        return 2 * (p - 1) * 2 * max(1, math.ceil(n / 2 / chunk_bytes))

    @classmethod
    def totals(cls, n, p, **options):
        if p == 1:
            return 0.0, 0.0, 0.0
        return float(cls.messages(p, n=n, **options)), 2.0 * (p - 1) * n, float((p - 1) * n)

def busiest_link(n, p, chunk_bytes=NETWORK_CHUNK_BYTES):
    """``(messages, bytes, bytes added)`` of the rank whose link carries most, each way (in = out).

    A rank sends each chunk of a half once to its parent and once to each child,
    and receives as many; an inner node adds its children's halves.
    """
    halves = (n / 2, n / 2)
    chunks = [max(1, math.ceil(half / chunk_bytes)) for half in halves]
    worst, trees = (0, 0.0, 0.0), double_trees(p)
    for rank in range(p):
        links = [(parents[rank] is not None) + len(children[rank]) for parents, children in trees]
        load = (sum(k * l for k, l in zip(chunks, links)), sum(h * l for h, l in zip(halves, links)),
                sum(h * len(children[rank]) for h, (_, children) in zip(halves, trees)))
        worst = max(worst, load, key=lambda item: (item[1], item[2]))   # of equal links, the one adding most
    return worst

def depth(p):
    """Levels of the in-order tree over p ranks."""
    return max(0, p.bit_length() - 1)
