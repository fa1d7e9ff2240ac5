"""Where the ranks are and how arrays are cut: nodes, chunk sizes, credits, even splits.

Set-up metadata for the strategies and their cost formulas; nothing here moves gradients.
"""
import math

import numpy as np

# Pipelined trees (tree, dbtree) move the array in chunks. Through shared memory a chunk of 512 KiB
# was measured best (2-64 MB, 2-8 ranks); over TCP links smaller chunks keep every link of the tree
# busy (docs/scaling.md): the chunk size follows whether the tree spans nodes.
SHARED_MEMORY_CHUNK_BYTES = 512 * 1024
NETWORK_CHUNK_BYTES = 128 * 1024
# Over a network a child sends a summed chunk up only while fewer than this many of its chunks wait
# for their result to come down (see pipeline.py): MPI over TCP sends eagerly, whatever the receiver posted.
NETWORK_CREDITS = 8


def pipeline_chunk_bytes(spans_nodes):
    """The default chunk of a pipelined tree whose ranks are on several nodes, or on one."""
    return NETWORK_CHUNK_BYTES if spans_nodes else SHARED_MEMORY_CHUNK_BYTES


def layout_chunk_bytes(chunk_bytes, p, ranks_per_node):
    """The chunk a cost formula uses: the one given, else the default for p ranks, ``ranks_per_node`` a node."""
    return chunk_bytes or pipeline_chunk_bytes(ranks_per_node < p)


def node_ids(comm):
    """For each rank of ``comm``, the lowest rank of ``comm`` on its node (ranks that share memory).

    Collective over ``comm``; set-up metadata, exchanged once per strategy.
    """
    from mpi4py import MPI
    node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
    lowest = np.array([comm.Get_rank()], np.int64)
    node.Allreduce(MPI.IN_PLACE, lowest, op=MPI.MIN)
    node.Free()
    ids = np.empty(comm.Get_size(), np.int64)
    comm.Allgather(lowest, ids)
    return ids.tolist()


def spans_nodes(comm):
    """``(node_ids(comm), whether they name more than one node)``; collective over ``comm``."""
    nodes = node_ids(comm) if comm.Get_size() > 1 else [0]
    return nodes, len(set(nodes)) > 1


def tag_bound(comm):
    """The largest tag ``comm`` takes (MPI_TAG_UB, at least 32767)."""
    from mpi4py import MPI
    return comm.Get_attr(MPI.TAG_UB)


def credits_to(parent, nodes, rank, credits="auto"):
    """How many summed chunks may wait for their result before ``rank`` sends another to ``parent``.

    None means no limit: the root has no parent, and through shared memory a sender cannot run
    ahead of its receiver. ``credits`` (an int) forces a limit toward any parent (tests use it).
    """
    if parent is None or credits == 0:
        return None
    if credits != "auto":
        return int(credits)
    return NETWORK_CREDITS if nodes[parent] != nodes[rank] else None


def chunk_slices(size, chunk):
    """Contiguous slices of at most ``chunk`` elements covering ``range(size)``."""
    return [slice(start, min(start + chunk, size)) for start in range(0, size, chunk)]


def even_bounds(size, parts):
    """``parts + 1`` offsets splitting ``range(size)`` into near-equal contiguous parts."""
    return [part * size // parts for part in range(parts + 1)]


def log2_ceil(p):
    return max(0, math.ceil(math.log2(p))) if p >= 1 else 0
