"""The double binary tree's two trees, and the cost formula read from them (no MPI needed)."""
import pytest

from firecaffe.comm.dbtree import DoubleTreeAllreduce, busiest_link, depth, double_trees


def reaches_root(parents, rank):
    for _ in range(len(parents)):
        if parents[rank] is None:
            return True
        rank = parents[rank]
    return False


@pytest.mark.parametrize("p", range(1, 40))
def test_two_spanning_binary_trees_whose_inner_nodes_differ(p):
    inner = []
    for parents, children in double_trees(p):
        assert sum(parent is None for parent in parents) == 1
        assert all(reaches_root(parents, rank) for rank in range(p))
        assert {(c, r) for r in range(p) for c in children[r]} == {(r, q) for r, q in enumerate(parents) if q is not None}
        assert all(len(c) <= 2 for c in children)
        inner.append({r for r in range(p) if children[r]})
    assert not inner[0] & inner[1]          # every rank is an inner node in at most one tree
    assert max(max(len(chain(parents, r)) for r in range(p)) for parents, _ in double_trees(p)) == depth(p)


def chain(parents, rank):
    out = []
    while parents[rank] is not None:
        rank = parents[rank]
        out.append(rank)
    return out


@pytest.mark.parametrize("p, load", [(2, 1.0), (3, 1.5), (4, 1.5), (5, 2.0), (16, 2.0)])
def test_the_busiest_link_carries_about_2n_each_way(p, load):
    n = 2**24
    assert busiest_link(n, p)[1] == pytest.approx(load * n)
    a, b, c = DoubleTreeAllreduce.cost_coefficients(n, p)
    assert b >= load * n and b < load * n * 1.1 and c == pytest.approx(n if p > 2 else n / 2)


@pytest.mark.parametrize("p", range(2, 40))
def test_no_rank_has_more_links_than_two_binary_trees_force(p):
    # 2(p - 1) links in all; a rank may be inner (3 links) in one tree only, so the
    # fewest a busiest rank can have is ceil(4(p - 1) / p): 3 on 3-4 ranks, 4 from 5 on
    links = [sum((parents[r] is not None) + len(children[r]) for parents, children in double_trees(p))
             for r in range(p)]
    assert max(links) == -(-4 * (p - 1) // p)
