"""docs/scaling.md's prose figures for the emulated cluster (sweeps, strong scaling, AlexNet against
SqueezeNet), each computed from the committed records and tables with the current code (see doc_prose.py)."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "launch"))
from doc_blocks import _rows  # noqa: E402
from doc_prose import MIB, _floors, _pct_span, _span, _times  # noqa: E402
from firecaffe.insight.bench import model  # noqa: E402
from firecaffe.insight.bench.report import load_folder  # noqa: E402

C = "docs/scaling/cluster"
RATE = 100e6
ODD = (3, 5, 6, 7, 12)


def cluster_odd(texts):
    at = _times(f"{C}/100M/odd_100M.json")

    def against_ring(comm):
        return ", ".join(f"{at[(comm, 16 * MIB, p)] / _floor(p):.2f}" for p in ODD)
    share = [at[("dbtree", 16 * MIB, p)] / at[("mpi", 16 * MIB, p)] for p in ODD]
    return (f"Off the powers of two (16 MiB, x the ring floor, on {', '.join(map(str, ODD))} nodes): ring "
            f"{against_ring('ring')}x; dbtree\n{against_ring('dbtree')}x; MPICH {against_ring('mpi')}x (it folds "
            f"the extra ranks in\nwith whole arrays), so there dbtree takes {_span(share)} of MPICH's time.")


def _floor(p, n=16 * MIB):
    from cluster_floors import floor_s
    return floor_s("ring", n, p, RATE)


def cluster_100m_targets(texts):
    at = _times(f"{C}/100M/100M.json", f"{C}/100M/64M_100M.json")
    odd = _times(f"{C}/100M/odd_100M.json")
    nodes, big = (2, 4, 8, 16), (16, 64)
    dbtree = _floors(at, "dbtree", RATE, big, nodes, "ring")
    dbtree_odd = {p: odd[("dbtree", 16 * MIB, p)] / _floor(p) for p in ODD}
    missed = {p: v for p, v in dbtree_odd.items() if round(v, 2) > 1.25}
    vs_mpi = {p: [at[("dbtree", s * MIB, p)] / at[("mpi", s * MIB, p)] for s in big if ("mpi", s * MIB, p) in at]
              for p in nodes}
    ps_tree = [at[("ps", 16 * MIB, w)] / at[("tree", 16 * MIB, p)] for p, w in ((2, 2), (4, 4), (8, 8), (16, 15))]
    records = load_folder(f"{C}/100M")
    profile = model.fit(records)
    worst = {}
    for r, _, e in model.errors(records, profile):
        if r["ranks"] >= 4 and abs(e) > abs(worst.get(r["comm"], (0, None))[0]):
            worst[r["comm"]] = (e, r)
    tree_e, tree_r = worst["tree"]
    hier = _times(f"{C}/hier-8x2/hier_100M.json")
    hier_ms = [hier[("hier", 16 * MIB, 2 * k)] for k in (2, 4, 8)]
    hier_x = [t / _floor(k) for t, k in zip(hier_ms, (2, 4, 8))]
    flat_ring, flat_mpi = hier[("ring", 16 * MIB, 16)], hier[("mpi", 16 * MIB, 16)]
    return (
        f"- **ring within 1.1x of 2(p-1)/p n/B: met**, {_span(_floors(at, 'ring', RATE, big, nodes))} on every "
        "node count from 2 to 16.\n"
        f"- **binomial tree within 1.2x of L n/B: met**, {_span(_floors(at, 'tree', RATE, big, nodes))}.\n"
        f"- **dbtree within 1.25x of the ring floor: met on 2-16 nodes** ({_span(dbtree)} on 2, 4, 8, 16; "
        + ", ".join(f"{v:.2f}x on {p}" for p, v in dbtree_odd.items() if p not in missed)
        + "), **not on " + ", ".join(f"{p}** ({v:.2f}x)" for p, v in missed.items())
        + ". From 5 ranks on, any two binary trees whose inner nodes differ give some rank 2n each way,\n"
        f"  p/(p-1) times a ring's bytes ({5 / 4:.2f}x on 5 nodes, {8 / 7:.2f}x on 8, {16 / 15:.2f}x on 16). "
        "**Never slower than MPI's Allreduce:\n  not met on 8 and 16 nodes** ("
        f"{_span(vs_mpi[8])} of MPICH's time on 8, {_span(vs_mpi[16])} on 16; {_span(vs_mpi[2] + vs_mpi[4])} on "
        "2 and\n  4; below 1 off the powers of two, above). On a power of two MPICH runs Rabenseifner's algorithm,\n"
        "  whose links carry a ring's 2(p-1)/p n, and runs it at "
        f"{_span(_floors(at, 'mpi', RATE, big, nodes))} of that floor; a double\n  binary tree's busiest link "
        f"carries 2n, so on 8 nodes it cannot come within {8 / 7 - 1:.0%} of it (on 16\n  within "
        f"{16 / 15 - 1:.0%}) at sizes where latency does not count.\n"
        f"- **ps / tree grows with p as the formulas say**: {', '.join(f'{v:.2f}' for v in ps_tree)} at 16 MiB "
        "against the\n  formulas' 2W/L = "
        + ", ".join(f"{2 * w / max(1, (p - 1).bit_length()):.3g}" for p, w in ((2, 2), (4, 4), (8, 8), (16, 15)))
        + "; ps itself "
        f"{_span(_floors(at, 'ps', RATE, (4, 16), (2, 4, 8, 15)))} of 2 W n/B at 4 and 16 MiB.\n"
        f"- **fitted model within 15% at 4 or more nodes, for tree, dbtree, ring, mpi, ps and hier: "
        f"{'met' if max(abs(e) for e, _ in worst.values()) <= 0.15 else 'not met'}.**\n"
        f"  One profile over {profile['points']} points (the sweep, 64 MiB, the odd node counts and hier's "
        "points on 8\n  nodes x 2 ranks; [fit.txt](scaling/cluster/100M/fit.txt)), largest error per strategy: "
        + ", ".join(f"{c} {abs(e):.0%}" for c, (e, _) in sorted(worst.items(), key=lambda kv: abs(kv[1][0]))
                    if c != "tree")
        + f", tree {abs(tree_e):.0%} ({tree_r['bytes'] // MIB} MiB on {tree_r['ranks']} nodes, where chunk "
        "latency counts and alpha\n  fits to 0 over these sizes). beta = "
        f"{1 / profile['beta_s_per_byte'] / 1e6:.1f} MB/s against 12.5 nominal.\n"
        f"- Below 16 MiB: at 4 MiB the tree is {_span(_floors(at, 'tree', RATE, (4,), (4, 8, 16)))} and dbtree "
        f"{_span(_floors(at, 'dbtree', RATE, (4,), (4, 8, 16), 'ring'))} on 4-16 nodes (per-chunk\n  latency and "
        f"fill are a larger share), the ring and MPICH "
        f"{_span(_floors(at, 'ring', RATE, (4,), (4, 8, 16)) + _floors(at, 'mpi', RATE, (4,), (4, 8, 16)))}.\n"
        "- **hier** (8 nodes x 2 ranks, `--inter ring`, [scaling/cluster/hier-8x2/](scaling/cluster/hier-8x2/)):\n"
        f"  16 MiB in {', '.join(f'{t * 1e3:.0f}' for t in hier_ms)} ms on 2, 4, 8 nodes, "
        f"{', '.join(f'{x:.2f}x' for x in hier_x)} of a ring over the nodes\n  (1 n/B, 1.5 n/B, 1.75 n/B); a flat "
        f"ring over the same 16 ranks\n  took {flat_ring * 1e3:.0f} ms (its node links carry 2(p-1)/p n for p = 16 "
        f"ranks, {2 * 15 / 16 / 1.75:.2f}x hier's bytes), and MPICH\n  {flat_mpi * 1e3:.0f} ms (its Allreduce knows the nodes, as "
        "hier does).")


def cluster_1g(texts):
    at, rate = _times(f"{C}/1G/1G.json"), 1e9
    big, to8 = (16, 64), (2, 4, 8)

    def x(comm, nodes, against=None):
        ws = [15 if (comm == "ps" and p == 16) else p for p in nodes]
        return _span(_floors(at, comm, rate, big, ws, against))
    records = load_folder(f"{C}/1G")
    profile = model.fit(records)
    worst = {}
    for r, _, e in model.errors(records, profile):
        if r["ranks"] >= 4 and abs(e) > abs(worst.get(r["comm"], 0)):
            worst[r["comm"]] = e
    return (f"the links bind through 8\nnodes for every strategy (16-64 MiB: ring {x('ring', to8)}, tree "
            f"{x('tree', to8)}, dbtree {x('dbtree', to8, 'ring')}, ps\n{x('ps', to8)}, MPICH {x('mpi', to8)}) and "
            f"through 16 for all but MPICH (ring {x('ring', (16,))}, tree\n{x('tree', (16,))}, dbtree "
            f"{x('dbtree', (16,), 'ring')}, ps {x('ps', (16,))}; MPICH {x('mpi', (16,))}: eight lock-step "
            "exchanges of 16\nnodes' traffic at 16 Gb/s through the 2 cores). Fit (one profile, >= 4 nodes), largest "
            "error: " + ", ".join(f"{c} {abs(e):.0%}" for c, e in sorted(worst.items(), key=lambda kv: abs(kv[1])))
            + ".")


def _strong_rows(folder, comm):
    """{nodes: (measured ms, predicted ms, error %)} and the 1-node iteration of a strong-scaling table."""
    rows = {}
    for nodes, measured, predicted, error, speedup, _ in _rows(_text(f"{C}/{folder}/{comm}/table.md")):
        rows[int(nodes)] = (float(measured), predicted.split()[0], error, speedup)
    return rows


def _text(path):
    return (REPO / path).read_text()


def strong_prose(texts):
    tables = {c: _strong_rows("strong", c) for c in ("ring", "tree", "dbtree", "mpi")}
    errors = [abs(int(row[2].rstrip("%"))) for t in tables.values() for n, row in t.items() if n > 1]
    at8 = [abs(int(t[8][2].rstrip("%"))) for t in tables.values()]
    speed2 = [float(t[2][3]) for t in tables.values()]
    return (f"{'Every point is' if max(errors) <= 20 else 'Not every point is'} within the 20% of the target; "
            f"the prediction is low by {min(at8)}-{max(at8)}% on 8\nnodes, where 8 ranks share 2 cores and a rank "
            "that has finished its backward spins in the allreduce while the\nothers still compute. On a 100 Mb/s "
            f"network this net stops scaling at 2 nodes (speedup {_span(speed2, 2, '')}, then\nbelow 1): the model "
            "says so before the run, which is what it is for. (The dbtree's 4-node prediction\nwas 1001 ms, -4%, with "
            "the formula of that day, archived: commit acab54f; the current one counts its busiest link\nas 1.5 n on "
            f"4 ranks and gives {tables['dbtree'][4][1]} ms, {tables['dbtree'][4][2]}.)")


def strong_mtu9000(texts):
    parts, ones = [], []
    for comm in ("ring", "tree"):
        t = _strong_rows("strong-mtu9000", comm)
        ones.append(f"{t[1][0]:.0f}")
        parts.append(f"{comm} {' / '.join(t[n][2].rstrip('%') for n in (2, 4, 8))}% on 2 / 4 / 8 nodes "
                     f"(1-node iteration {t[1][0]:.0f} ms)")
    first = _strong_rows("strong", "ring")[1][0]
    return (f"{parts[0]}, {parts[1]}. The machine was not the one of the run above: the same 1-node iteration "
            f"took {first:.0f} ms\nthere and {' and '.join(ones)} ms in the two runs kept here, and every "
            "prediction scales with it\n(`--compute-ms T1`), so these errors are mostly the spread of T1.")


def strong_reno_prose(texts):
    tables = {c: _strong_rows("strong-reno", c) for c in ("ring", "tree")}
    errors = {(c, n): float(t[n][1]) / t[n][0] - 1 for c, t in tables.items() for n in (2, 4, 8)}
    over = [k for k, e in errors.items() if abs(e) > 0.2]
    first = _strong_rows("strong", "tree")[8][2]
    return (f"The 1-node iteration was {tables['ring'][1][0]:.0f} ms. "
            + ("Within the 20% of the target at every point" if not over else
               "Within the 20% of the target except " + ", ".join(f"the {c} on {n} nodes, {errors[(c, n)]:+.1%}"
                                                                   for c, n in over))
            + f" (the tree on 8 nodes: {first} in the first run, above). The prediction is low on 8 nodes for "
            "both:\n8 ranks share 2 cores, and the model's compute term (T1 / 2 from 2 nodes on) has no room for "
            "the\nranks' contention at the reductions' hand-offs, which the tree, with more levels, meets more "
            "often.")


def alexnet_squeezenet(texts):
    from doc_prose import _analysis
    at = _times(f"{C}/alexnet_squeezenet/alex_squeeze100M.json")
    alex, squeeze = sorted({n for _, n, _ in at}, reverse=True)
    lines = ["| nodes | AlexNet tree | SqueezeNet tree | ratio | AlexNet ring | SqueezeNet ring | ratio |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    ratios = []
    for p in (2, 4, 8):
        cells = []
        for comm in ("tree", "ring"):
            a, s = at[(comm, alex, p)], at[(comm, squeeze, p)]
            ratios.append(a / s)
            cells += [f"{a:.1f} s", f"{s:.2f} s", f"{a / s:.1f}"]
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    flops = {name: _analysis(folder, (2,))["flops_per_image"] / 1e9
             for name, folder in (("AlexNet", "alexnet"), ("SqueezeNet", "squeezenet_v1.0"))}
    tree8 = {n: at[("tree", n, 8)] for n in (alex, squeeze)}
    lines += ["", f"The communication of an iteration is in the ratio of the parameters ({alex / squeeze:.1f}x; "
              f"measured {_span(ratios, 1)}),\nat every node count and for both algorithms. The compute is not: "
              f"`firecaffe analyze` counts {flops['AlexNet']:.2f} GFLOP per image for\nAlexNet and "
              f"{flops['SqueezeNet']:.2f} for SqueezeNet (not timed here). So at the same batch the two nets compute "
              "about\nas long, and SqueezeNet spends far less time communicating: for the tree's communication on 8\n"
              "nodes to be no more than each node's compute, one iteration must take at least 8 x c(8) on one\n"
              f"node, {8 * tree8[squeeze]:.0f} s for SqueezeNet and {8 * tree8[alex]:.0f} s for AlexNet, a batch "
              f"{tree8[alex] / tree8[squeeze]:.0f}x larger. The claim holds, on links."]
    return "\n".join(lines)


def mpi_fold(texts):
    at = {**_times(f"{C}/100M/100M.json"), **_times(f"{C}/100M/odd_100M.json")}
    n_over_b = 16 * MIB / (RATE / 8)

    def formula(p):                 # bytes over rank 1's link, in n: the fold, Rabenseifner, the early half
        q = 1 << (p.bit_length() - 1)
        return 2 + 2 * (q - 1) / q + 0.5 * ((p - q) % 2)
    nodes = [p for p in (3, 5, 6, 7, 12, 15) if ("mpi", 16 * MIB, p) in at]
    t5 = at[("mpi", 16 * MIB, 5)]
    return (f"On 5 nodes (16 MiB, {t5 * 1e3:.0f} ms, {t5 / n_over_b:.2f} n/B where the fold without that "
            f"early half gives {formula(5) - 0.5:.1f}) rank 0\nfolds its array into rank 1, and in the same "
            "seconds rank 2, rank 1's partner in the first halving step, pushes its half\nto rank 1 at once (MPI "
            "over TCP sends eagerly), over the same incoming link: rank 1's link takes 1.5 n\nbefore it can add "
            "and send its own half. With r = p - q folding ranks, the first step pairs newranks 2i\nand 2i + 1, "
            "and exactly one pair mixes a folding rank with one that does not when r is odd; the formula\nnow "
            "adds that n/2 (firecaffe/comm/mpi.py). Measured / formula, in n/B: "
            + ", ".join(f"{p} nodes {at[('mpi', 16 * MIB, p)] / n_over_b:.2f} / {formula(p):.3g}" for p in nodes)
            + ".")


def readme_scaling(texts):
    """README.md's scaling row: the 100 Mb/s sweep against the floors, the fit, the misses."""
    at = _times(f"{C}/100M/100M.json", f"{C}/100M/64M_100M.json")
    odd = _times(f"{C}/100M/odd_100M.json")
    nodes, big = (2, 4, 8, 16), (16, 64)
    records = load_folder(f"{C}/100M")
    worst = max(abs(e) for r, _, e in model.errors(records, model.fit(records)) if r["ranks"] >= 4)
    nets = [abs(float(r[k]) / float(r[k + 1]) - 1) for r in _rows(texts[f"{C}/nets/table.md"]) for k in (2, 4)]
    slower = [at[("dbtree", s * MIB, p)] / at[("mpi", s * MIB, p)] for s in big for p in (8, 16)]
    return (f"ring {_span(_floors(at, 'ring', RATE, big, nodes))} the link floor, tree "
            f"{_span(_floors(at, 'tree', RATE, big, nodes))} its bandwidth term, dbtree "
            f"{_span(_floors(at, 'dbtree', RATE, big, nodes, 'ring'))}, ps "
            f"{_span(_floors(at, 'ps', RATE, big, (2, 4, 8, 15)))}, ps/tree growing with p as the formulas say, "
            f"one fitted model within {worst:.0%} of every point for all six strategies; FireCaffe's ps-vs-tree "
            f"experiment at 1 Gb/s within {_pct_span(nets)} of the model; misses listed in the doc (dbtree "
            f"{odd[('dbtree', 16 * MIB, 5)] / _floor(5):.2f}x the ring floor on 5 nodes, where its own bytes are "
            f"{5 / 4:.2f}x; dbtree {_span(slower)} slower than MPICH's Allreduce on 8-16 nodes, as its bytes say; "
            "MPICH on 16 nodes at 1 Gb/s)")


PROSE_CLUSTER = {
    "readme-scaling": readme_scaling,
    "mpi-fold": mpi_fold,
    "cluster-odd": cluster_odd,
    "cluster-100M-targets": cluster_100m_targets,
    "cluster-1G": cluster_1g,
    "strong-prose": strong_prose,
    "strong-mtu9000": strong_mtu9000,
    "strong-reno-prose": strong_reno_prose,
    "alexnet-squeezenet": alexnet_squeezenet,
}
