"""Hierarchical allreduce: inside each node to a leader, across nodes among the leaders, back inside.

The ranks of one node (those that share memory, ``MPI.COMM_TYPE_SHARED``)
reduce to their leader (the node's lowest rank) with the MPI library's Reduce,
which moves the data through shared memory; the leaders then allreduce over
the network with the ``inter`` strategy (tree or ring); each leader broadcasts
the sum to its node. Only one rank per node touches the links, so the bytes on
a node's link are those of the inter-node strategy over N = p / K nodes, not
over p ranks.
"""
from mpi4py import MPI

from ..errors import FirecaffeError
from .base import Communicator

INTER_STRATEGIES = ("tree", "ring")


class HierarchicalCommunicator(Communicator):
    """Reduce inside the node, ``inter`` (tree or ring) among node leaders, broadcast inside the node."""

    arithmetic_on_host = True

    def __init__(self, comm, inter="tree"):
        super().__init__(comm)
        if inter not in INTER_STRATEGIES:
            raise FirecaffeError(f"--inter {inter!r}: choose one of {', '.join(INTER_STRATEGIES)}")
        self.inter = inter
        self.node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
        is_leader = self.node.Get_rank() == 0
        self.leaders = comm.Split(0 if is_leader else MPI.UNDEFINED, key=comm.Get_rank())
        self.across = None
        if is_leader:
            from . import make_communicator
            self.across = make_communicator(inter, self.leaders)

    def _allreduce(self, buf):
        if self.node.Get_size() > 1:
            if self.across is not None:
                self.node.Reduce(MPI.IN_PLACE, buf, op=MPI.SUM, root=0)
            else:
                self.node.Reduce(buf, None, op=MPI.SUM, root=0)
        if self.across is not None:
            self.across._allreduce(buf)
        if self.node.Get_size() > 1:
            self.node.Bcast(buf, root=0)
