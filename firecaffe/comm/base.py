"""The seam every gradient-reduction strategy implements, and the helpers they share.

A strategy is one class in one file of this package. It declares its ``name``
(what ``--comm`` takes), its cost formula (the alpha-beta-gamma coefficients
of one step and the bytes it moves) and how one step's gradients become new
weights (``step_``). The default step is "allreduce the diff arena, then
update": a subclass writes ``_allreduce(buf)`` on a host (or CUDA-aware)
buffer and ``cost_coefficients``. A strategy whose ranks play different roles
(the parameter server) overrides the role properties and ``step_``.

Strategies see flat buffers only: the caller (firecaffe.run) hands ``step_``
the two arenas and an ``update(window, sum_across)`` callback that averages
``diff[window]`` and applies the solver's rule to ``params[window]``.
Gradients travel as buffers: only mpi4py's upper-case methods, never serialized Python objects.
Modules of this package import mpi4py inside functions, so the registry and
the cost formulas load without MPI.
"""
import contextlib
import math
import os

import numpy as np

# Message tags, one per kind of traffic, so that strategies never mix messages.
TAG_RING = 13
TAG_PS_PUSH = 21
TAG_PS_PULL = 22
TAG_PS_STOP = 23
TAG_PS_HISTORY = 24

REDUCIBLE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
WHOLE = slice(None)


class Strategy:
    """Sums flat arrays across the worker ranks of ``comm`` and turns a step's gradients into weights.

    Class attributes a strategy declares: ``name``; ``order`` (its place in
    lists and tables); ``arithmetic_on_host`` (it adds buffers itself, so device
    arrays are staged through host memory); ``overlaps`` (its step is an
    allreduce of the diff arena, so ``--bucket-mb`` may reduce buckets during
    backward); ``needs_gpu`` (device arrays only: left out of the default lists
    of ``bench comm`` and ``analyze --workers``, and it needs a GPU even alone);
    ``step_words`` (what the stall watchdog names).
    """

    name = None
    order = 100
    arithmetic_on_host = True
    overlaps = True
    needs_gpu = False
    step_words = "the allreduce of the gradients"
    own_waits = True          # FIRECAFFE_WAIT=sleep applies to its waits (nccl: its stream waits, not MPI)

    def __init__(self, comm, **options):
        self.comm = comm
        self._pinned = {}  # slot -> (pinned memory, its size in bytes)

    # --- roles (by default every rank of ``comm`` is a worker) --------------------
    @property
    def is_worker(self):
        """Whether this rank computes gradients (False on a parameter server)."""
        return True

    @property
    def worker_comm(self):
        """The communicator of the ranks that compute gradients (None on a server)."""
        return self.comm

    @property
    def num_workers(self):
        return self.comm.Get_size()

    @property
    def rank(self):
        return self.comm.Get_rank()

    @property
    def size(self):
        return self.comm.Get_size()

    # --- one step -----------------------------------------------------------------
    def allreduce_(self, flat):
        """Replace ``flat`` on every worker by the sum of all workers' ``flat``."""
        check_flat(flat)
        with self.staged(flat, device_ok=not self.arithmetic_on_host) as buf:
            self._allreduce(buf)

    def step_(self, diff, params, update, reduced=False):
        """Turn every worker's gradient ``diff`` into new ``params`` on every worker.

        ``update(window, sum_across)`` averages ``diff[window]`` (the sum over
        workers) and applies the solver's rule to ``params[window]``;
        ``sum_across(x)`` adds a float over the ranks that update the other
        windows (None: this rank updates them all). ``reduced`` says buckets
        already summed ``diff`` during backward.
        """
        if not reduced:
            self.allreduce_(diff)
        update(WHOLE, None)

    def gather_history_(self, history, root=0):
        """Before a snapshot: make ``root``'s solver history (flat arrays) whole. Every rank calls it."""

    def close(self):
        """After the last step, on every rank."""

    def _allreduce(self, buf):
        raise NotImplementedError

    # --- cost formula (one allreduce of n bytes among p workers) ------------------
    @classmethod
    def cost_coefficients(cls, n, p, **options):
        """``(a, b, c)``: time = a alpha + b beta + c gamma, each rank on its own core and link."""
        raise NotImplementedError

    @classmethod
    def busiest_rank(cls, n, p, **options):
        """``(messages, bytes sent + received, bytes added)`` of the rank with the most work (contention)."""
        raise NotImplementedError

    @classmethod
    def totals(cls, n, p, **options):
        """``(messages, bytes sent, bytes added)`` summed over all ranks."""
        if p == 1:
            return 0.0, 0.0, 0.0
        return float(cls.messages(p, **options)), 2.0 * (p - 1) * n, float((p - 1) * n)

    @classmethod
    def messages(cls, p, **options):
        raise NotImplementedError

    @classmethod
    def processes(cls, p, **options):
        """MPI processes of a job with p workers."""
        return p

    @classmethod
    def traffic(cls, n, p, **options):
        """``(per worker, total, busiest rank)`` bytes (sent + received; total: sent) of one step."""
        if p == 1 and cls.processes(p, **options) == 1:
            return 0.0, 0.0, 0.0
        return (cls.bytes_per_worker(n, p, **options), cls.totals(n, p, **options)[1],
                cls.busiest_rank(n, p, **options)[1])

    @classmethod
    def bytes_per_worker(cls, n, p, **options):
        """Sent + received by an average worker; an allreduce moves at least 2 (p-1)/p n each way."""
        return 4.0 * (p - 1) / p * n

    # --- device buffers -----------------------------------------------------------
    def staged(self, flat, device_ok, download=True, upload=True, slot=0):
        return staged(flat, device_ok, download, upload, pinned=self._pinned, slot=slot)


@contextlib.contextmanager
def staged(flat, device_ok, download=True, upload=True, pinned=None, slot=0):
    """Yield a buffer MPI may use for ``flat``; copy the result back on exit.

    NumPy arrays are yielded as they are. For a CuPy array the stream is
    synchronized first (MPI must not read memory a kernel still writes);
    with a CUDA-aware MPI (``FIRECAFFE_CUDA_AWARE_MPI=1``) and ``device_ok``
    the array itself is yielded, otherwise a pinned host buffer (slot ``slot``
    of the cache ``pinned``, kept for reuse), filled from the device if
    ``download`` and copied back to it if ``upload``.
    """
    if isinstance(flat, np.ndarray):
        yield flat
        return
    import cupy
    stream = cupy.cuda.get_current_stream()
    stream.synchronize()
    if device_ok and os.environ.get("FIRECAFFE_CUDA_AWARE_MPI") == "1":
        yield flat
        return
    host = _pinned_buffer({} if pinned is None else pinned, slot, flat.size, flat.dtype)
    if download:
        flat.get(out=host)
    yield host
    if upload:
        flat.set(host)
        stream.synchronize()


def _pinned_buffer(cache, slot, size, dtype):
    """``size`` elements of pinned host memory, grown as needed and reused across calls."""
    nbytes = size * np.dtype(dtype).itemsize
    if slot not in cache or cache[slot][1] < nbytes:
        import cupy
        cache[slot] = (cupy.cuda.alloc_pinned_memory(nbytes), nbytes)
    return np.frombuffer(cache[slot][0], dtype, size)


def check_flat(flat):
    """Raise ValueError unless ``flat`` is a contiguous 1-D float32/float64 array."""
    if flat.ndim != 1 or not flat.flags.c_contiguous or flat.dtype not in REDUCIBLE_DTYPES:
        raise ValueError(
            "communicators work on contiguous 1-D float32/float64 arrays, got "
            f"shape {flat.shape} dtype {flat.dtype} contiguous={flat.flags.c_contiguous}")


WAIT_ENV = "FIRECAFFE_WAIT"


def wait_policy(environ=None):
    """How a strategy waits for its messages, from ``FIRECAFFE_WAIT``: "spin" (MPI's own waits, which
    poll; the default) or "sleep" (test, then sleep 50 us growing to 1 ms: comm/polite.py): for ranks that
    share too few cores, as in launch/cluster_sweep.sh's 16 emulated nodes on one machine."""
    import os
    value = (os.environ if environ is None else environ).get(WAIT_ENV, "").strip().lower() or "spin"
    if value not in ("spin", "sleep"):
        from ..errors import FirecaffeError
        raise FirecaffeError(f"{WAIT_ENV}={value!r}: choose spin (MPI's own waits, the default) or sleep "
                             "(for ranks that share too few cores, as on an emulated cluster)")
    return value


def waitall(requests):
    """Wait for every mpi4py request in ``requests`` (each its own ``Wait``: a PoliteRequest sleeps)."""
    for request in requests:
        request.Wait()


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
