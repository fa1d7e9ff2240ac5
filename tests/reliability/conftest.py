"""``launch``: run a command (under mpiexec or not) with a hard time limit; nothing outlives the test."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


class Finished:
    def __init__(self, returncode, stdout, stderr, seconds):
        self.returncode, self.stdout, self.stderr, self.seconds = returncode, stdout, stderr, seconds

    def __str__(self):
        return (f"exit status {self.returncode} after {self.seconds:.1f} s\n--- stdout\n{self.stdout[-3000:]}"
                f"\n--- stderr\n{self.stderr[-5000:]}")


def launch(args, ranks=None, timeout=60):
    """Run ``args`` (``python`` for the first word means this interpreter), under ``mpiexec -n ranks``
    if ranks is given, in a session of its own that is killed whole on timeout (the test then fails)."""
    args = [sys.executable if a == "python" else str(a) for a in args]
    if ranks is not None:
        mpiexec = shutil.which("mpiexec")
        if mpiexec is None:
            pytest.skip("mpiexec not found (pip install 'firecaffe[mpich]')")
        args = [mpiexec, "-n", str(ranks)] + args
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    start = time.perf_counter()
    process = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"{' '.join(args)} still running after {timeout} s\n--- stderr\n{stderr[-5000:]}")
    return Finished(process.returncode, stdout, stderr, time.perf_counter() - start)


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


@pytest.fixture(name="launch")
def launch_fixture():
    return launch
