"""The seam every gradient-reduction strategy implements, and the helpers they share.

A strategy is one class in one file of this package. It declares its ``name``
(what ``--comm`` takes), its cost formula (the alpha-beta-gamma coefficients
of one step and the bytes it moves) and how one step's gradients become new
weights, in two calls that return to the caller (the Solver owns the step):
``window = reduce(diff)`` sums the gradients and says which window of the arenas
this rank updates, the caller scales and updates it, ``publish(params)`` makes
every worker's weights whole. The default is "allreduce the diff arena, update
all of it, publish nothing": a subclass writes ``_allreduce(buf)`` on a host (or
CUDA-aware) buffer and ``cost_coefficients``. A strategy whose ranks play
different roles (the parameter server) overrides the role properties,
``reduce`` and ``publish``; no strategy calls back into its caller.

How a strategy waits for its messages is a constructor argument (``wait``:
"spin", MPI's own waits, or "sleep", test and sleep: comm/polite.py), as is
whether MPI may be handed device memory (``cuda_aware``); both come from the
run's options (core/options.py), never from the environment here.

Strategies see flat buffers only. Gradients travel as buffers: only mpi4py's
upper-case methods, never serialized Python objects. Modules of this package
import mpi4py inside functions, so the registry and the cost formulas load
without MPI. The package's other parts: ``cost`` (the formula's interface),
``staging`` (device buffers), ``topology`` (nodes, chunks, splits), ``tags``,
``compress`` (``--compress``: each strategy holds this rank's codec; ``allreduce_``
applies it, handing a strategy that declares ``wire_codecs`` a Link to send through).
"""
import copy

import numpy as np

from ..errors import FirecaffeError
from .compress import make_codec
from .cost import CostFormula
from .polite import PoliteComm
from .staging import staged

WAITS = ("spin", "sleep")
REDUCIBLE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
WHOLE = slice(None)


class Strategy(CostFormula):
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
    own_waits = True          # wait="sleep" applies to its waits (nccl: its stream waits, not MPI)
    # Compressed gradients (comm/compress): ``wire_codecs``: its _allreduce(buf, link) sends every
    # message through a Link (fp16, bf16, int8 decoded, added in float32 and encoded at every hop);
    # ``factor_codecs``: PowerSGD may sum its float32 factors with its _allreduce (an allreduce).
    wire_codecs = False
    factor_codecs = True
    codec_advice = "use --comm tree, dbtree, ring, hier or ps for fp16, bf16 and int8"

    def __init__(self, comm, wait="spin", cuda_aware=False, codec=None, **options):
        if wait not in WAITS:
            raise FirecaffeError(f"a strategy waits by {' or '.join(WAITS)}, not {wait!r}")
        self.codec = self.check_codec(codec if codec is not None else make_codec("none"))
        self.wait = wait if self.own_waits else "spin"
        self.cuda_aware = bool(cuda_aware)
        self.comm = PoliteComm(comm) if self.wait == "sleep" and comm is not None else comm
        self._pinned = {}  # slot -> (pinned memory, its size in bytes)

    def waiting(self, wait):
        """This strategy with its waits done the ``wait`` way (the bucket reducer's thread sleeps while
        the main thread computes), sharing its buffers: the two are never used at the same time."""
        if wait == self.wait or not self.own_waits:
            return self
        sibling = copy.copy(self)
        sibling.wait = wait
        raw = self.comm.raw if isinstance(self.comm, PoliteComm) else self.comm
        sibling.comm = PoliteComm(raw) if wait == "sleep" else raw
        return sibling

    @classmethod
    def check_codec(cls, codec):
        """``codec`` if this strategy can send through it, else one clear refusal naming what works."""
        if codec.lossless or (codec.elementwise and cls.wire_codecs) or (
                not codec.elementwise and cls.factor_codecs):
            return codec
        works = [kind for kind, ok in (("fp16, bf16, int8", cls.wire_codecs), ("powersgd[:RANK]", cls.factor_codecs))
                 if ok]
        raise FirecaffeError(f"--comm {cls.name} cannot send --compress {codec.name}: with --comm {cls.name} use "
                             f"--compress {' or '.join(works + ['none'])}; {cls.codec_advice}")

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
    def allreduce_(self, flat, at=0):
        """Replace ``flat`` on every worker by the sum of all workers' ``flat``, through the codec.

        ``at``: where ``flat`` starts in the gradient arena (a bucket's offset), for the codec's
        per-element state (error feedback) and messages; 0 for the whole arena or a lone array."""
        check_flat(flat)
        codec = self.codec
        plain = codec.lossless or not codec.active
        with self.staged(flat, device_ok=not self.arithmetic_on_host and plain) as buf:
            if plain:
                self._allreduce(buf)
            elif codec.elementwise:
                self._allreduce(buf, codec.link(buf, at))
            else:
                codec.reduce(buf, at, self._allreduce, self.num_workers)

    def reduce(self, diff, reduced=False):
        """First half of a step: sum every worker's gradient ``diff``; return the window of the arenas
        this rank updates with the sum (``WHOLE`` for peers, its shard on a parameter server, None on a
        rank that updates nothing). ``reduced``: buckets already summed ``diff`` during backward."""
        if not reduced:
            self.allreduce_(diff)
        return WHOLE

    def publish(self, params):
        """Second half, after the rank updated its window of ``params``: every worker's ``params``
        whole again (peers updated them all: nothing to do)."""

    # A rank that updates only a window of the arenas adds the gradient's squared norm over the
    # ranks that update the others (gradient clipping needs the whole norm): a callable, or None.
    sum_across = None

    def gather_history_(self, history, root=0):
        """Before a snapshot: make ``root``'s solver history (flat arrays) whole. Every rank calls it."""

    def close(self):
        """After the last step, on every rank."""

    def _allreduce(self, buf, link=None):
        """Sum ``buf`` (host, or device for a CUDA-aware MPI) in place; ``link`` (comm/compress/codecs.py):
        how its messages travel, None for the plain buffer (only a ``wire_codecs`` strategy gets one)."""
        raise NotImplementedError

    # --- device buffers -----------------------------------------------------------
    def staged(self, flat, device_ok, download=True, upload=True, slot=0):
        """``staging.staged`` with this strategy's pinned buffers; device memory goes to MPI only where
        ``device_ok`` and the MPI library is CUDA-aware."""
        return staged(flat, device_ok and self.cuda_aware, download, upload, pinned=self._pinned, slot=slot)


def check_flat(flat):
    """Raise ValueError unless ``flat`` is a contiguous 1-D float32/float64 array."""
    if flat.ndim != 1 or not flat.flags.c_contiguous or flat.dtype not in REDUCIBLE_DTYPES:
        raise ValueError(
            "communicators work on contiguous 1-D float32/float64 arrays, got "
            f"shape {flat.shape} dtype {flat.dtype} contiguous={flat.flags.c_contiguous}")


def waitall(requests):
    """Wait for every mpi4py request in ``requests`` (each its own ``Wait``: a PoliteRequest sleeps)."""
    for request in requests:
        request.Wait()
