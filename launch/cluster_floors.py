#!/usr/bin/env python3
"""Each measured point of a `bench comm --json` file from an emulated cluster against its link floor.

usage: launch/cluster_floors.py RESULTS.json RATE [--min-bytes 16M]

The floor is the bandwidth term alone, the time the busiest link needs at RATE (bits/s):
ring, mpi and dbtree 2(p-1)/p n/B (the bandwidth optimum of any allreduce); tree (binomial,
pipelined) L n/B with L = ceil(log2 p), the root's L children each sending and receiving n;
ps 2 W n/B, the server's link carrying W pushes and W pulls one after the other; hier its
inter-node tree over p / ppn nodes. Prints a Markdown table and the ps/tree ratio per p.
"""
import json
import math
import sys

sys.path.insert(0, __file__.rsplit("/launch/", 1)[0])
from firecaffe.cluster.links import parse_rate  # noqa: E402
from firecaffe.insight.predict import parse_size  # noqa: E402


def floor_s(comm, n, p, rate_bps, ppn=1):
    bandwidth = rate_bps / 8
    if comm in ("ring", "mpi", "dbtree"):
        return 2 * (p - 1) / p * n / bandwidth
    if comm == "tree":
        return math.ceil(math.log2(p)) * n / bandwidth
    if comm == "hier":
        return math.ceil(math.log2(max(2, p // ppn))) * n / bandwidth
    if comm == "ps":
        return 2 * p * n / bandwidth
    return None


def main(argv):
    path, rate = argv[0], parse_rate(argv[1])
    smallest = parse_size(argv[argv.index("--min-bytes") + 1]) if "--min-bytes" in argv else 0
    ppn = int(argv[argv.index("--ppn") + 1]) if "--ppn" in argv else 1
    records = [r for r in json.load(open(path)) if r["bytes"] >= smallest and r["ranks"] >= 2]
    print("| comm | MiB | ranks | measured ms | floor ms | x floor |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in sorted(records, key=lambda r: (r["comm"], r["bytes"], r["ranks"])):
        floor = floor_s(r["comm"], r["bytes"], r["ranks"], rate, ppn)
        if floor:
            print(f"| {r['comm']} | {r['bytes'] / 2**20:g} | {r['ranks']} | {r['median_s'] * 1e3:.0f} | "
                  f"{floor * 1e3:.0f} | {r['median_s'] / floor:.2f} |")
    times = {(r["comm"], r["bytes"], r["ranks"]): r["median_s"] for r in records}
    print("\nps / tree (same number of workers):")
    for (comm, n, p), t in sorted(times.items()):
        if comm == "ps" and ("tree", n, p) in times:
            print(f"  {n / 2**20:g} MiB, {p} workers: {t / times[('tree', n, p)]:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
