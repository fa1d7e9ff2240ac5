"""Hierarchical allreduce: inside each node to a leader, across nodes among the leaders, back inside.

The ranks of one node (those that share memory, ``MPI.COMM_TYPE_SHARED``)
reduce to their leader (the node's lowest rank) with the MPI library's Reduce,
which moves the data through shared memory; the leaders then allreduce over
the network with the ``inter`` strategy (tree or ring, ``--inter``); each
leader broadcasts the sum to its node. Only one rank per node touches the
links, so a node's link carries the inter-node strategy's bytes over N = p/K
nodes (K ranks per node), not over p ranks.

Cost: the inter strategy's formula on N nodes, plus, inside the node,
ceil(log2 K) steps of reduce and as many of broadcast through shared memory,
where a copy costs about what an add costs (both stream memory at the same
speed), so a byte reduced costs 2 gamma and a byte broadcast 1 gamma:

    inter(n, N) + 2 L_K alpha + 3 L_K n gamma,     L_K = ceil(log2 K)
"""
from ..errors import FirecaffeError
from .base import Strategy
from .topology import log2_ceil

INTER_STRATEGIES = ("tree", "ring")


def check_inter(inter):
    if inter not in INTER_STRATEGIES:
        raise FirecaffeError(f"--inter {inter!r}: choose one of {', '.join(INTER_STRATEGIES)}")
    return inter


class HierarchicalAllreduce(Strategy):
    """Reduce inside the node, ``inter`` (tree or ring) among node leaders, broadcast inside the node."""

    name = "hier"
    order = 45
    wire_codecs = True        # the leaders' strategy sends through the link; inside a node float32

    def __init__(self, comm, inter="tree", **options):
        options.pop("servers", None)
        from mpi4py import MPI

        from . import make_strategy
        super().__init__(comm, **options)
        self.inter = check_inter(inter)
        self.node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
        is_leader = self.node.Get_rank() == 0
        self.leaders = comm.Split(0 if is_leader else MPI.UNDEFINED, key=comm.Get_rank())
        self.across = make_strategy(inter, self.leaders, **options) if is_leader else None

    def _allreduce(self, buf, link=None):
        from mpi4py import MPI
        if self.node.Get_size() > 1:
            if self.across is not None:
                self.node.Reduce(MPI.IN_PLACE, buf, op=MPI.SUM, root=0)
            else:
                self.node.Reduce(buf, None, op=MPI.SUM, root=0)
        if self.across is not None:
            self.across._allreduce(buf) if link is None else self.across._allreduce(buf, link)
        if self.node.Get_size() > 1:
            self.node.Bcast(buf, root=0)

    @staticmethod
    def _layout(p, ranks_per_node, inter):
        """(the strategy among node leaders, the number of nodes, tree levels inside a node)."""
        from . import strategy_class
        return (strategy_class(check_inter(inter)), -(-p // ranks_per_node),
                log2_ceil(min(ranks_per_node, p)))

    @classmethod
    def cost_coefficients(cls, n, p, ranks_per_node=1, inter="tree", **options):
        if p == 1:
            return 0.0, 0.0, 0.0
        leaders, nodes, levels = cls._layout(p, ranks_per_node, inter)
        a, b, c = leaders.cost_coefficients(n, nodes)
        return a + 2.0 * levels, b, c + 3.0 * levels * n

    @classmethod
    def busiest_rank(cls, n, p, ranks_per_node=1, inter="tree", **options):
        if p == 1:
            return 0.0, 0.0, 0.0
        leaders, nodes, levels = cls._layout(p, ranks_per_node, inter)
        a, b, c = leaders.busiest_rank(n, nodes)
        return a + 2.0 * levels, b + 2.0 * levels * n, c + levels * n

    @classmethod
    def messages(cls, p, n=0, ranks_per_node=1, inter="tree", **options):
        leaders, nodes, _ = cls._layout(p, ranks_per_node, inter)
        return leaders.messages(nodes, n=n) + 2 * (p - nodes)
