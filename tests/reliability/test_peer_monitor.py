"""A rank that stops answering (SIGSTOP: rank 0, a parameter server; the same for a node whose link
went down, tests/cluster) is named within about 30 s by the rank that watches its beacon, and the
job ends; a slow but healthy step (a rank sleeping 40 s, its beacon thread still answering) is not
taken for a dead peer."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.mpi
REPO = Path(__file__).resolve().parents[2]
TRAIN = ["train", "nets/lenet_digits/solver.prototxt", "--test-interval", "0", "--display", "1",
         "--global-batch", "24"]


def start(tmp_path, args, ranks=3):
    pytest.importorskip("mpi4py")
    log = open(tmp_path / "log", "w")
    env = dict(os.environ, PYTHONPATH=str(REPO), FIRECAFFE_NO_PROGRESS="1", FIRECAFFE_TEST_JOB=tmp_path.name)
    return subprocess.Popen(["mpiexec", "-n", str(ranks), sys.executable, *args], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(tmp_path, job, pattern, timeout=120):
    deadline = time.monotonic() + timeout
    while not re.search(pattern, (tmp_path / "log").read_text(errors="replace")):
        assert job.poll() is None and time.monotonic() < deadline, (tmp_path / "log").read_text()[-3000:]
        time.sleep(0.1)


def end(job, *pids):
    """Kill what is left of the job (its session, and a stopped rank that may have left it)."""
    for kill, target in [(os.kill, pid) for pid in pids if pid] + [(os.killpg, job.pid)]:
        try:
            kill(target, signal.SIGKILL)
        except ProcessLookupError:
            pass


def rank_pid(tmp_path, rank):
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            variables = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"FIRECAFFE_TEST_JOB={tmp_path.name}".encode() in variables and f"PMI_RANK={rank}".encode() in variables:
            return int(pid)
    pytest.fail(f"rank {rank} not found")


@pytest.mark.parametrize("comm, rank, role", [("tree", 0, "worker"), ("ps", 2, "parameter server")])
def test_a_stopped_rank_is_named_within_about_30_s(tmp_path, comm, rank, role):
    job = start(tmp_path, ["-m", "firecaffe", *TRAIN, "--max-iter", "100000", "--comm", comm,
                           "--snapshot-prefix", tmp_path / "x"])
    stopped = None
    try:
        wait_for(tmp_path, job, r"Iteration (?:[3-9]|\d\d+) \(")
        stopped = rank_pid(tmp_path, rank)
        os.kill(stopped, signal.SIGSTOP)
        began = time.monotonic()
        job.wait(90)
        seconds = time.monotonic() - began
    finally:
        end(job, stopped)
    log = (tmp_path / "log").read_text(errors="replace")
    assert job.returncode != 0 and seconds < 45, (seconds, log[-3000:])
    assert re.search(rf"firecaffe: rank \d of 3: rank {rank} \({role}, pid {stopped} on \S+\) has not answered "
                     r"for 3\d s: its node answers, the process does not \(stopped", log), log[-3000:]


def test_a_slow_healthy_step_is_not_taken_for_a_dead_peer(tmp_path):
    job = start(tmp_path, ["tests/reliability/fault_train.py", "1", "3", "sleep:40", "--", *TRAIN,
                           "--max-iter", "6", "--snapshot-prefix", tmp_path / "x"])
    try:
        job.wait(240)
    finally:
        end(job)
    log = (tmp_path / "log").read_text(errors="replace")
    assert job.returncode == 0 and "has not answered" not in log and "Optimization Done." in log, log[-3000:]
