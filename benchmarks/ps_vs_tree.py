"""A parameter server against the tree, measured beside the cost model's prediction.

    python benchmarks/ps_vs_tree.py                 # this machine: 4 -> 8 workers at 16 MB (9 processes)
    sudo python benchmarks/ps_vs_tree.py --cluster  # 4 emulated nodes at 200 Mb/s: 3 workers at 4 MB

On this machine it prints how much each strategy's time grows from 4 to 8
workers (the model, with docs/scaling/profile.json's fit and this machine's
cores: ps 3.6x, tree 3.0x); on the emulated cluster, ps's time over tree's
with the model's ratio for the links (100 us, 200 Mb/s). These were the timing
assertions of tests/bench/test_bench_mpi.py and tests/cluster/test_links.py;
the tests keep the direction (ps slower than tree), the figures are here.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from firecaffe.insight.bench import model

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "docs" / "scaling" / "profile.json"


def bench(prefix, args, out):
    command = [*prefix, sys.executable, "-m", "firecaffe", "bench", "comm", "--comm", "tree,ps", "--quiet",
               "--json", str(out), *args]
    subprocess.run(command, cwd=REPO, check=True, timeout=600,
                   env=dict(os.environ, OMP_NUM_THREADS="1", FIRECAFFE_NO_PROGRESS="1"))
    return {(r["comm"], r["ranks"]): r["median_s"] for r in json.loads(Path(out).read_text())}


def on_this_machine(repeats, out):
    times = bench(["mpiexec", "-n", "9"], ["--sizes", "16M", "--ranks", "4,8", "--repeats", str(repeats)], out)
    profile = dict(json.loads(PROFILE.read_text()), cores=os.cpu_count())
    print(f"16 MB, 4 -> 8 workers, {os.cpu_count()} cores; model: {PROFILE.relative_to(REPO)} with cores = "
          f"{os.cpu_count()}")
    print("| comm | 4 workers ms | 8 workers ms | measured growth | model growth |")
    print("|---|---:|---:|---:|---:|")
    for comm in ("tree", "ps"):
        predicted = model.predict(comm, 16 * 2**20, 8, profile) / model.predict(comm, 16 * 2**20, 4, profile)
        print(f"| {comm} | {times[comm, 4] * 1e3:.1f} | {times[comm, 8] * 1e3:.1f} | "
              f"{times[comm, 8] / times[comm, 4]:.2f}x | {predicted:.2f}x |")


def on_the_cluster(repeats, out):
    from firecaffe import cluster
    nbytes, rate = 4 * 2**20, 200e6
    cluster.up(4, "200M", 1, "fcps", 1500, "reno")
    try:
        times = bench([sys.executable, "-m", "firecaffe", "cluster", "exec", "--name", "fcps", "--"],
                      ["--ranks", "3", "--sizes", str(nbytes), "--repeats", str(repeats), "--warmup", "1"], out)
    finally:
        cluster.down("fcps")
    link = {"alpha_s": 100e-6, "beta_s_per_byte": 8 / rate, "gamma_s_per_byte": 0.0}
    predicted = model.predict("ps", nbytes, 3, link) / model.predict("tree", nbytes, 3, link)
    measured = times["ps", 3] / times["tree", 3]
    print("4 emulated nodes at 200 Mb/s, 3 workers, 4 MB (ps: server on node 3)")
    print(f"tree {times['tree', 3] * 1e3:.0f} ms, ps {times['ps', 3] * 1e3:.0f} ms: ps/tree {measured:.2f}, "
          f"model {predicted:.2f} ({measured / predicted - 1:+.0%})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", action="store_true", help="on 4 emulated nodes (needs root)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        (on_the_cluster if args.cluster else on_this_machine)(args.repeats, Path(folder) / "bench.json")


if __name__ == "__main__":
    main()
