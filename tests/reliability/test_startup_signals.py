"""A signal during start-up (Ctrl-C right after the command, a SLURM warning, mpiexec forwarding
SIGINT while the ranks import NumPy): no KeyboardInterrupt tracebacks, no rank left waiting in
MPI_Init for one that is gone; the job stops at its first iteration boundary, exit 130.

Before any firecaffe code runs, Python's own start-up may still be hit: the process dies of the
signal (no output) or CPython prints "Fatal Python error: init_import_site" (a .pth file's import
interrupted); both end the process at once and are allowed here."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TRAIN = ["-m", "firecaffe", "train", "nets/lenet_digits/solver.prototxt", "--test-interval", "0",
         "--max-iter", "30"]
PYTHONS_OWN = "Fatal Python error: init_import_site"


def interrupted_at(delay, tmp_path, ranks=None):
    env = dict(os.environ, PYTHONPATH=str(REPO), FIRECAFFE_NO_PROGRESS="1")
    command = [sys.executable, *TRAIN, "--snapshot-prefix", str(tmp_path / f"x{delay}")]
    if ranks:
        command = ["mpiexec", "-n", str(ranks), "python", *command[1:]]
    job = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, start_new_session=True)
    time.sleep(delay)
    job.send_signal(signal.SIGINT)
    try:
        out, _ = job.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        pytest.fail(f"SIGINT {delay} s into start-up: still running 60 s later (a hang)")
    return job.returncode, out


@pytest.mark.parametrize("ranks", [None, pytest.param(2, marks=pytest.mark.mpi)])
def test_ctrl_c_during_start_up_stops_cleanly(tmp_path, ranks):
    if ranks:
        pytest.importorskip("mpi4py")
    stopped = 0
    for delay in (0.15, 0.3, 0.45, 0.6, 0.8, 1.0, 1.3):
        code, out = interrupted_at(delay, tmp_path, ranks)
        if PYTHONS_OWN in out or (code in (-signal.SIGINT, 130) and "firecaffe" not in out and "Iteration" not in out):
            continue                        # Python's own start-up, before firecaffe's first line
        assert "Traceback" not in out and "KeyboardInterrupt" not in out and "Aborted" not in out, (delay, out[-3000:])
        assert code == 130 and "firecaffe: stopped by SIGINT at iteration" in out, (delay, code, out[-3000:])
        stopped += 1
    assert stopped >= 3, "most delays should land in firecaffe's own start-up or training"


def test_a_rank_whose_job_never_comes_up_leaves_after_a_stop_signal():
    """A stop signal before MPI_Init is over, and MPI_Init never ends (the signal killed another
    rank in its own start-up): the rank says so and exits instead of waiting forever."""
    code = ("import os, signal, time\n"
            "from firecaffe.run import signals\n"
            "signals.JOIN_SECONDS = 0.5\n"
            "s = signals.Signals().install()\n"
            "os.kill(os.getpid(), signal.SIGTERM)\n"
            "time.sleep(30)\n")
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 143 and time.monotonic() - start < 20, done
    assert "firecaffe: stopped by SIGTERM during start-up: MPI_Init did not finish within 0.5 s" in done.stderr
