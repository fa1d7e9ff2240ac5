"""The cost formula every strategy declares: one allreduce of n bytes among p workers.

Time = a alpha + b beta + c gamma (latency per message, seconds per byte on a link,
seconds per byte added), each rank on its own core and link; the busiest rank's work
and the totals over ranks feed the contention terms of the model (insight/bench/model.py).
A strategy class inherits ``CostFormula`` through ``base.Strategy`` and overrides the
classmethods; the formula is the algorithm that runs.
"""


class CostFormula:
    """Class methods only: the registry, the model and ``analyze`` use them without MPI."""

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
