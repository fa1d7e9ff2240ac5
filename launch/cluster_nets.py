#!/usr/bin/env python3
"""FireCaffe's experiment on the emulated cluster: ps against tree at real nets' gradient sizes,
measured beside the model fitted to a size sweep on the same links.

usage: launch/cluster_nets.py NETS.json SWEEP_FOLDER OUT.png [--min-bytes 4M] [--link 1 Gb/s]

NETS.json: `bench comm --comm tree,ps --sizes <gradient bytes>` records (launch/cluster_sweep.sh
with RUNS="1G:30380704,27994208" for NiN and GoogLeNet); SWEEP_FOLDER: a cluster sweep at the same
link rate, to which the model is fitted. Writes the figure and prints a Markdown table.
"""
import json
import sys

sys.path.insert(0, __file__.rsplit("/launch/", 1)[0])
from firecaffe.insight.bench import model  # noqa: E402
from firecaffe.insight.bench.plot import plot_time_vs_ranks  # noqa: E402
from firecaffe.insight.bench.report import load_folder  # noqa: E402
from firecaffe.insight.predict import parse_size  # noqa: E402

NETS = {30380704: "NiN", 27994208: "GoogLeNet"}


def main(argv):
    nets_path, sweep, out = argv[:3]
    smallest = parse_size(argv[argv.index("--min-bytes") + 1]) if "--min-bytes" in argv else 4 * 2**20
    link = argv[argv.index("--link") + 1] if "--link" in argv else "1 Gb/s"
    profile = model.fit([r for r in load_folder(sweep) if r["bytes"] >= smallest])
    records = json.load(open(nets_path))
    plot_time_vs_ranks(records, out, profile=profile, title="ps vs tree at NiN's (29 MB) and GoogLeNet's (27 MB) "
                       f"gradient, {link} links")
    print(f"model: alpha {profile['alpha_s'] * 1e6:.0f} us, beta {profile['beta_s_per_byte'] * 1e12:.0f} ps/B, "
          f"gamma {profile['gamma_s_per_byte'] * 1e12:.0f} ps/B (fitted to {sweep}, >= {smallest} bytes)\n")
    print("| net | workers | tree ms | model | ps ms | model | ps / tree | model |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    times = {(r["comm"], r["bytes"], r["ranks"]): r["median_s"] for r in records}
    for (comm, n, p), ps in sorted(times.items(), key=lambda item: (item[0][1], item[0][2])):
        tree_p = 16 if p == 15 else p      # ps on 15 workers + 1 server sits beside tree on 16 nodes
        if comm != "ps" or ("tree", n, tree_p) not in times:
            continue
        tree = times[("tree", n, tree_p)]
        tree_model, ps_model = model.predict("tree", n, tree_p, profile), model.predict("ps", n, p, profile)
        print(f"| {NETS.get(n, n)} | {p}{' (tree: 16)' if tree_p != p else ''} | {tree * 1e3:.0f} | "
              f"{tree_model * 1e3:.0f} | {ps * 1e3:.0f} | {ps_model * 1e3:.0f} | {ps / tree:.2f} | "
              f"{ps_model / tree_model:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
