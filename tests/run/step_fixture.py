"""Final weights and solver state of lenet_digits after 20 iterations, per strategy, as SHA-256 digests.

Recorded before the training step was made one-way (issue 20) and checked after: the refactor must
change no bit. ``python tests/run/step_fixture.py record [COMMIT]`` adds this machine's record to
step_fixture.json beside this file (or replaces the one with the same fingerprint), naming the commit
it ran; ``check`` (the test) recomputes every case and compares. The digests depend on the machine's
BLAS and CPU, so each record carries a fingerprint of both, and the check compares with the record
whose fingerprint matches this machine's (one per machine kind seen: the Intel Xeon one from before
issue 20, the AMD EPYC one recorded at df22a0a, the last commit whose CI passed that check on Intel).
The third record, AMD EPYC with OpenBLAS's SkylakeX kernels, was made on 2026-12-08 by df22a0a's code
(this script copied into a worktree of that commit): its digests equal the Intel Xeon record's in
every case, so with the same OpenBLAS kernels the two CPUs gave the same bits. The same Zen 4 machine
with OPENBLAS_CORETYPE=Haswell reproduced the AMD Haswell record too.
"""
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).with_name("step_fixture.json")
ITERS = 20
STRATEGIES = ("tree", "dbtree", "ring", "mpi", "hier", "ps")
CASES = {"1 rank": (1, [])}
for _name in STRATEGIES:
    CASES[f"4 ranks {_name}"] = (4, ["--comm", _name])
    CASES[f"4 ranks {_name} --bucket-mb 0.01"] = (4, ["--comm", _name, "--bucket-mb", "0.01"])
# two servers: gradient clipping needs the norm summed across them (sum_across)
CASES["4 ranks ps 2 servers clip"] = (4, ["--comm", "ps", "--ps-servers", "2", "--clip-gradients", "0.5"])


def fingerprint():
    """What the digests depend on besides firecaffe: the CPU, NumPy and its BLAS."""
    import numpy as np
    from threadpoolctl import threadpool_info
    found = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    # NumPy's own BLAS where it ships one (another package's, e.g. SciPy's, may be loaded beside it)
    found = [i for i in found if "numpy" in (i.get("filepath") or "")] or found
    blas = sorted(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}" for i in found)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "numpy": np.__version__, "blas": blas}


def run_case(ranks, extra, timeout=240):
    """Train, snapshot at the end; return the digests of the .caffemodel and .solverstate."""
    with tempfile.TemporaryDirectory() as folder:
        prefix = os.path.join(folder, "fx")
        command = [sys.executable, "-m", "firecaffe", "train", "nets/lenet_digits/solver.prototxt",
                   "--max-iter", str(ITERS), "--test-interval", "0", "--display", "0", "--no-progress",
                   "--snapshot-prefix", prefix, *extra]
        if ranks > 1:
            command = ["mpiexec", "-n", str(ranks), *command]
        # the NumPy engine, as when recorded: the fixture pins the training step's wiring; oneDNN's
        # convolutions (another summation order) are checked against that path in tests/layers
        env = dict(os.environ, FIRECAFFE_NO_PROGRESS="1", OMP_NUM_THREADS="1", FIRECAFFE_DNNL_LIB="off")
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        from firecaffe.proto import caffe_pb2
        with open(f"{prefix}_iter_{ITERS}.caffemodel", "rb") as f:
            weights = f.read()
        state = caffe_pb2.SolverState()
        with open(f"{prefix}_iter_{ITERS}.solverstate", "rb") as f:
            state.ParseFromString(f.read())
        state.ClearField("learned_net")          # the weights file's path: a new folder each run
        return {"caffemodel": hashlib.sha256(weights).hexdigest(),
                "solverstate": hashlib.sha256(state.SerializeToString(deterministic=True)).hexdigest()}


def compute(names=None):
    return {name: run_case(*CASES[name]) for name in (names or CASES)}


def records():
    return json.loads(FIXTURE.read_text())["records"] if FIXTURE.exists() else []


def matching(fingerprint_now):
    """The record made on a machine with this fingerprint, or None."""
    return next((r for r in records() if r["fingerprint"] == fingerprint_now), None)


if __name__ == "__main__":
    if sys.argv[1:2] == ["record"]:
        mine = {"fingerprint": fingerprint(), "iterations": ITERS, "cases": compute(),
                "recorded_at": sys.argv[2] if len(sys.argv) > 2 else "(not named)"}
        others = [r for r in records() if r["fingerprint"] != mine["fingerprint"]]
        FIXTURE.write_text(json.dumps({"records": others + [mine]}, indent=1) + "\n")
    else:
        recorded = matching(fingerprint())
        if recorded is None:
            sys.exit(f"no record for this machine ({fingerprint()}): record one on a known-good commit")
        now = compute()
        bad = [name for name in now if now[name] != recorded["cases"].get(name)]
        print("differ:", bad or "none")
        sys.exit(1 if bad else 0)
