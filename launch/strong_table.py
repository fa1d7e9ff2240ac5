#!/usr/bin/env python3
"""launch/cluster_strong.sh's table: measured time per iteration on P emulated nodes against
`firecaffe analyze --workers P --profile PROFILE --compute-ms T1 --compute-cores C`.

usage: launch/strong_table.py OUTDIR DEPLOY.prototxt PROFILE.json COMM COMPUTE_CORES [COMPRESS]

COMPRESS (default none): the runs' --compress codec, predicted with `analyze --compress` (the profile needs
that codec's delta: `bench fit` on `bench comm --compress` records).

T1 and each measured time are the median of rank 0's "Iteration i (... s/1 iters)" lines from
iteration 3 on (the first two warm up). Prints a Markdown table.
"""
import json
import pathlib
import re
import statistics
import subprocess
import sys

ITER = re.compile(r"Iteration (\d+) \([\d.]+ iter/s, ([\d.]+)s/1 iters\)")


def per_iteration_ms(log):
    times = [float(m[2]) * 1e3 for m in ITER.finditer(log.read_text(errors="replace")) if int(m[1]) >= 3]
    return statistics.median(times) if times else None


def main(out, deploy, profile, comm, cores, compress="none"):
    out = pathlib.Path(out)
    measured = {int(log.stem): per_iteration_ms(log) for log in out.glob("*.log") if log.stem.isdigit()}
    one = measured.pop(1, None)
    if one is None:
        sys.exit(f"{out}/1.log: no iteration times (the 1-node run failed?)")
    nodes = sorted(p for p, ms in measured.items() if ms is not None)
    report = json.loads(subprocess.run(
        [sys.executable, "-m", "firecaffe", "analyze", deploy, "--workers", ",".join(map(str, nodes)),
         "--profile", profile, "--compute-ms", str(one), "--compute-cores", str(cores), "--json"]
        + (["--compress", compress] if compress != "none" else []),
        check=True, capture_output=True, text=True).stdout)
    predicted = {r["workers"]: r for r in report["predicted"] if r["comm"] == comm}
    print(f"{comm}{'' if compress == 'none' else ', --compress ' + compress}, gradient {report['param_bytes'] / 2**20:.2f} MiB, 1 node {one:.0f} ms per iteration, "
          f"compute on at most {cores} cores\n")
    print("| nodes | measured ms | predicted ms (compute + comm) | error | measured speedup | predicted |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| 1 | {one:.0f} | - | - | 1.00 | 1.00 |")
    for p in nodes:
        r = predicted[p]
        ms, pred = measured[p], r["iteration_s"] * 1e3
        print(f"| {p} | {ms:.0f} | {pred:.0f} ({r['compute_s'] * 1e3:.0f} + {r['seconds'] * 1e3:.0f}) | "
              f"{(pred - ms) / ms:+.0%} | {one / ms:.2f} | {one / pred:.2f} |")


if __name__ == "__main__":
    if len(sys.argv) not in (6, 7):
        sys.exit(__doc__.split("\n\n")[1])
    main(*sys.argv[1:])
