#!/usr/bin/env python3
"""launch/cluster_strong.sh's table: measured time per iteration on P emulated nodes against
`firecaffe analyze --workers P --profile PROFILE --compute-ms T1 --compute-cores C`.

usage: launch/strong_table.py OUTDIR DEPLOY.prototxt PROFILE.json COMM COMPUTE_CORES [COMPRESS]

COMPRESS (default none): the runs' --compress codec, predicted with `analyze --compress` (the profile needs
that codec's delta: `bench fit` on `bench comm --compress` records).

T1 and each measured time are the median of rank 0's "Iteration i (... s/1 iters)" lines from
iteration 3 on (the first two warm up). Where OUTDIR has 1-small.log (1 node at a smaller global
batch b), T1 is split as t(B) = f + B c: the fixed part f = (B t(b) - b t(B)) / (B - b) goes to
analyze --fixed-ms (what every worker pays whatever its share of the batch). Prints a Markdown table.
"""
import json
import pathlib
import re
import statistics
import subprocess
import sys

ITER = re.compile(r"Iteration (\d+) \([\d.]+ iter/s, ([\d.]+)s/1 iters\)")
BATCH = re.compile(r"Job: .*global batch (\d+)")


def per_iteration_ms(log):
    times = [float(m[2]) * 1e3 for m in ITER.finditer(log.read_text(errors="replace")) if int(m[1]) >= 3]
    return statistics.median(times) if times else None


def global_batch(log):
    found = BATCH.search(log.read_text(errors="replace"))
    return int(found[1]) if found else None


def fixed_ms(out, one):
    """The part of the 1-node time t(B) that does not shrink with the batch, from 1-small.log's t(b)."""
    small = out / "1-small.log"
    if not small.exists():
        return None
    b, big, t_small = global_batch(small), global_batch(out / "1.log"), per_iteration_ms(small)
    if not (b and big and t_small) or b >= big:
        sys.exit(f"{small}: no iteration times or global batch below 1.log's")
    return max(0.0, (big * t_small - b * one) / (big - b))


def main(out, deploy, profile, comm, cores, compress="none"):
    out = pathlib.Path(out)
    measured = {int(log.stem): per_iteration_ms(log) for log in out.glob("*.log") if log.stem.isdigit()}
    one = measured.pop(1, None)
    if one is None:
        sys.exit(f"{out}/1.log: no iteration times (the 1-node run failed?)")
    fixed = fixed_ms(out, one)
    nodes = sorted(p for p, ms in measured.items() if ms is not None)
    report = json.loads(subprocess.run(
        [sys.executable, "-m", "firecaffe", "analyze", deploy, "--workers", ",".join(map(str, nodes)),
         "--profile", profile, "--compute-ms", str(one), "--compute-cores", str(cores), "--json"]
        + (["--compress", compress] if compress != "none" else [])
        + (["--fixed-ms", f"{fixed:.3f}"] if fixed is not None else []),
        check=True, capture_output=True, text=True).stdout)
    predicted = {r["workers"]: r for r in report["predicted"] if r["comm"] == comm}
    print(f"{comm}{'' if compress == 'none' else ', --compress ' + compress}, gradient {report['param_bytes'] / 2**20:.2f} MiB, 1 node {one:.0f} ms per iteration, "
          f"compute on at most {cores} cores"
          + (f", {fixed:.0f} ms of it fixed per worker (1 node at global batch {global_batch(out / '1-small.log')}: "
             f"{per_iteration_ms(out / '1-small.log'):.0f} ms)" if fixed is not None else "") + "\n")
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
