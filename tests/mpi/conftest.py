"""``run_mpi``: launch a script under mpiexec from a test, with a hard time limit."""
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


class MPIRun:
    """What one mpiexec launch left behind."""

    def __init__(self, returncode, stdout, stderr, seconds):
        self.returncode, self.stdout, self.stderr, self.seconds = returncode, stdout, stderr, seconds

    def __str__(self):
        return f"exit status {self.returncode} after {self.seconds:.1f} s\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def run_mpi(n, script_args, timeout=60, env=None):
    """Run ``mpiexec -n n python <script_args>`` from the repository root; fail the test on timeout.

    ``script_args[0]`` is a script path (relative names are looked up next to
    this file) or ``-m module``. ``env`` adds environment variables.
    """
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("mpiexec not found (pip install 'firecaffe[mpich]')")
    args = [str(arg) for arg in script_args]
    if args[0] != "-m" and not os.path.isabs(args[0]):
        args[0] = str(HERE / args[0])
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    environment.update(env or {})
    start = time.perf_counter()
    # A session of its own, so that a hung job can be killed with all its ranks.
    process = subprocess.Popen([mpiexec, "-n", str(n), sys.executable, *args], cwd=REPO, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"mpiexec -n {n} {' '.join(args)} still running after {timeout} s\n"
                    f"--- stdout\n{stdout}\n--- stderr\n{stderr}")
    return MPIRun(process.returncode, stdout, stderr, time.perf_counter() - start)


@pytest.fixture(name="run_mpi")
def run_mpi_fixture():
    pytest.importorskip("mpi4py")
    return run_mpi
