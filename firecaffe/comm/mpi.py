"""The MPI library's own Allreduce: the baseline the other strategies are measured against."""
from .base import Strategy
from .topology import log2_ceil


class MPIAllreduce(Strategy):
    """``MPI_Allreduce(MPI_IN_PLACE, ..., MPI_SUM)``; hands device buffers to a CUDA-aware MPI.

    Modelled as Rabenseifner's algorithm (recursive-halving reduce-scatter,
    recursive-doubling allgather), MPICH's choice for long messages:
    2 L alpha + 2 (p-1)/p n beta + (p-1)/p n gamma, L = ceil(log2 p). When p is
    not a power of two, q = 2^floor(log2 p) ranks run it and the r = p - q others
    fold in first (their whole array to a partner, who adds it) and are answered
    last (the whole sum back): two more messages of n bytes and n more added,
    (2 log2 q + 2) alpha + (2 + 2 (q-1)/q) n beta + (1 + (q-1)/q) n gamma; on 15
    emulated nodes the power-of-two formula was 40-57% too fast. When r is odd,
    the first halving step pairs the last folding rank with one that does not
    fold, and that one sends its half at once: it arrives over the same link as
    the fold, so the step's other half leaves n/2 later (n/2 more on the link's
    time; seen in the node counters on 5 emulated nodes, docs/scaling.md).
    """

    name = "mpi"
    order = 30
    arithmetic_on_host = False
    codec_advice = ("MPI's Allreduce adds float32 and float64 only; for fp16, bf16 or int8 use --comm tree, "
                    "dbtree, ring, hier or ps")

    def _allreduce(self, buf, link=None):
        from mpi4py import MPI
        self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)

    @staticmethod
    def _rabenseifner(n, p, per_byte, link_time=False):
        """``(messages, bytes, bytes added)``: Rabenseifner on q = 2^floor(log2 p) ranks, ``per_byte`` times
        its (q-1)/q n bytes (2: one way over a link, 4: sent + received), and when q < p the fold (two
        whole arrays over one link, one more added). ``link_time``: the bytes are the busiest link's
        time, which an odd number of folding ranks stretches by n/2 (see the class)."""
        if p == 1:
            return 0.0, 0.0, 0.0
        q = 1 << (p.bit_length() - 1)
        fold = q != p
        early_half = 0.5 * n if link_time and (p - q) % 2 else 0.0
        return (2.0 * log2_ceil(q) + 2 * fold, per_byte * (q - 1) / q * n + 2.0 * n * fold + early_half,
                (q - 1) / q * n + n * fold)

    @classmethod
    def cost_coefficients(cls, n, p, **options):
        return cls._rabenseifner(n, p, 2.0, link_time=True)

    @classmethod
    def busiest_rank(cls, n, p, **options):
        return cls._rabenseifner(n, p, 4.0)

    @classmethod
    def messages(cls, p, **options):
        return 2 * p * log2_ceil(p)
