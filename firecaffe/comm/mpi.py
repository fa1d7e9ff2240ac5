"""The MPI library's own Allreduce and Bcast: the baseline the other strategies are measured against."""
from mpi4py import MPI

from .base import Communicator


class MPICommunicator(Communicator):
    """``MPI_Allreduce(MPI_IN_PLACE, ..., MPI_SUM)``; hands device buffers to a CUDA-aware MPI."""

    arithmetic_on_host = False

    def _allreduce(self, buf):
        self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
