#!/usr/bin/env python
"""Tables of `--comm auto` against an exhaustive sweep, from the folder launch/auto_check.sh wrote.

    python launch/auto_table.py OUTDIR [--profile RATE=FILE ...]

For every link rate, gradient and node count of the sweep (``{squeeze,alexnet}_<rate>.json``):
the sweep's fastest strategy, and the choice `--comm auto` makes with the probe measured on that
many nodes (``probe_<rate>_<nodes>.json``) and with each ``--profile`` of that rate, each with its
measured time and its ratio to the fastest. Then the `train --comm auto` runs
(``train_<rate>_<nodes>.log``): the choice, and measured against predicted.
"""
import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firecaffe.insight import auto  # noqa: E402
from firecaffe.insight.bench import model  # noqa: E402
from firecaffe.insight.bench.comm import human_bytes  # noqa: E402

GRADIENTS = {"squeeze": "squeezenet_cifar", "alexnet": "AlexNet-sized"}


def choice(profile, n, ranks, per_node=1):
    return auto.rank(auto.candidates(ranks, per_node), n, ranks, profile, per_node)[0].candidate.comm


def sweep_rows(folder, profiles):
    rows = []
    for path in sorted(folder.glob("*_*.json")):
        tag, _, rate = path.stem.partition("_")
        if tag not in GRADIENTS:
            continue
        records = json.loads(path.read_text())
        for n, ranks in sorted({(r["bytes"], r["ranks"]) for r in records}):
            measured = {r["comm"]: r["median_s"] for r in records if (r["bytes"], r["ranks"]) == (n, ranks)}
            if len(set(measured) - {"ps"}) < 2:      # ps's comparator on its worker count: not a sweep point
                continue
            best = min(measured, key=measured.get)
            probe_path = folder / f"probe_{rate}_{ranks}.json"
            picks = [("probe", json.loads(probe_path.read_text()))] if probe_path.exists() else []
            picks += [(name, profile) for name, profile in profiles.get(rate, [])]
            cells = []
            for _, profile in picks:
                chosen = choice(profile, n, ranks)
                cells.append(f"{chosen} {measured[chosen] * 1e3:.0f} ({measured[chosen] / measured[best]:.2f})"
                             if chosen in measured else f"{chosen} (not measured)")
            rows.append((rate, GRADIENTS[tag], n, ranks, best, measured[best], [name for name, _ in picks], cells,
                         sorted(measured.items(), key=lambda kv: kv[1])))
    return rows


def sweep_table(rows):
    out = []
    for rate in dict.fromkeys(row[0] for row in rows):
        subset = [row for row in rows if row[0] == rate]
        names = max((row[6] for row in subset), key=len)
        out += [f"**{rate}** (ms; in brackets: x the sweep's fastest)\n",
                "| gradient | nodes | sweep, fastest first | auto: " + " | auto: ".join(names) + " |",
                "|---|---:|---|" + "---|" * len(names)]
        for _, gradient, n, ranks, best, best_s, _, cells, ordered in subset:
            sweep = ", ".join(f"{comm} {seconds * 1e3:.0f}" for comm, seconds in ordered)
            out.append(f"| {gradient} ({human_bytes(n)}) | {ranks} | {sweep} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def train_table(folder):
    lines = ["| link | nodes | --comm auto chose (probe) | predicted iteration ms | measured against predicted |",
             "|---|---:|---|---:|---|"]
    for path in sorted(folder.glob("train_*_*.log"), key=lambda p: (p.stem.split("_")[1], int(p.stem.split("_")[2]))):
        _, rate, nodes = path.stem.split("_")
        text = path.read_text(errors="replace")
        chose = re.search(r"--comm auto: (.+?) for .*?predicted iteration ([0-9.]+) ms", text)
        measured = re.search(r"--comm auto: (measured iteration .*)", text)
        lines.append(f"| {rate} | {nodes} | {chose.group(1) if chose else 'no choice logged'} | "
                     f"{chose.group(2) if chose else '-'} | {measured.group(1) if measured else 'not reached'} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--profile", action="append", default=[], metavar="RATE=FILE",
                        help="A fitted profile to choose with at that link rate (repeatable).")
    args = parser.parse_args(argv)
    profiles = {}
    for item in args.profile:
        rate, _, path = item.partition("=")
        profiles.setdefault(rate, []).append((path, model.check_profile(json.loads(Path(path).read_text()), path)))
    print(sweep_table(sweep_rows(args.folder, profiles)))
    print(train_table(args.folder))


if __name__ == "__main__":
    main()
