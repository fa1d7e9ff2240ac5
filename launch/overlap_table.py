"""Medians of launch/overlap_links.sh's logs: per mode, time per iteration, communication, hidden, exposed.

Rank 0's log lines are read; the first two iterations (warm-up) are left out.
"""
import pathlib
import re
import statistics
import sys

ITER = re.compile(r"Iteration (\d+) \([\d.]+ iter/s, ([\d.]+)s/1 iters\)")
COMM = re.compile(r"Iteration (\d+), communication \(.*?\) ([\d.]+) ms, ([\d.]+) ms hidden behind backward"
                  r"(?:, ([\d.]+) ms CPU in the bucket thread)?")


def read(log):
    iters, comm = {}, {}
    for line in log.read_text(errors="replace").splitlines():
        if m := ITER.search(line):
            iters[int(m[1])] = float(m[2]) * 1e3
        elif m := COMM.search(line):
            comm[int(m[1])] = (float(m[2]), float(m[3]), float(m[4] or 0.0))
    # "Iteration i (... s/1 iters)" is logged at iteration i and times iteration i-1 through i.
    return [(iters[i + 1], *comm[i]) for i in sorted(comm) if i >= 2 and i + 1 in iters]


def main(folder):
    rows = {}
    for log in sorted(pathlib.Path(folder).glob("*.log")):
        rows.setdefault(log.name.split(".")[0], []).extend(read(log))
    print(f"{'mode':6} {'n':>3} {'iter ms':>8} {'comm ms':>8} {'hidden ms':>9} {'exposed ms':>10} "
          f"{'hidden %':>8} {'thread CPU ms':>13}")
    for mode in ("none", "spin", "sleep"):
        if not rows.get(mode):
            continue
        it, comm, hidden, cpu = (statistics.median(c) for c in zip(*rows[mode]))
        exposed = statistics.median(c - h for _, c, h, _ in rows[mode])
        share = 100 * hidden / comm if comm else 0.0
        print(f"{mode:6} {len(rows[mode]):3d} {it:8.0f} {comm:8.0f} {hidden:9.0f} {exposed:10.0f} {share:8.0f} {cpu:13.0f}")


if __name__ == "__main__":
    main(sys.argv[1])
