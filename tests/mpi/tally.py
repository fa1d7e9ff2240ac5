"""What the check_*.py scripts under mpiexec count: checks made and failures seen, and their one summary line."""
import sys

import numpy as np


class Tally:
    """``tally(ok, what)`` counts a check and prints a failure with the rank; ``finish(words)`` exits."""

    def __init__(self, world):
        self.world, self.cases, self.failures = world, 0, []

    def __call__(self, ok, what):
        self.cases += 1
        if not ok:
            self.failures.append(what)
            print(f"FAIL rank {self.world.rank}: {what}", flush=True)

    def finish(self, words):
        """Rank 0 prints 'N checks WORDS, F failed' over every rank; exit status 1 if any failed."""
        from mpi4py import MPI
        totals = np.array([self.cases, len(self.failures)])
        self.world.Allreduce(MPI.IN_PLACE, totals, op=MPI.SUM)
        if self.world.rank == 0:
            print(f"{totals[0]} checks {words}, {totals[1]} failed", flush=True)
        sys.exit(1 if totals[1] else 0)
