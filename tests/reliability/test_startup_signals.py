"""A signal during start-up (Ctrl-C right after the command, a SLURM warning, mpiexec forwarding
SIGINT while the ranks import NumPy): no KeyboardInterrupt tracebacks, no rank left waiting in
MPI_Init for one that is gone; the job stops at its first iteration boundary, exit 130.

Before any firecaffe code runs, Python's own start-up may still be hit: the process dies of the
signal (no output), or CPython prints a KeyboardInterrupt traceback without a firecaffe frame
("Fatal Python error: init_import_site" when a .pth file's import is hit, or runpy's); these end
the process at once and are allowed here. MPICH's mpiexec drops a Ctrl-C
that comes before it has started its processes (checked with plain `python -c` ranks: they run
on, untouched): the job then trains to its end, also allowed."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TRAIN = ["-m", "firecaffe", "train", "nets/lenet_digits/solver.prototxt", "--test-interval", "0",
         "--max-iter", "100000"]     # never ends on its own before the signal, however fast the machine


def in_firecaffe(out):
    """Whether a traceback in ``out`` passes through firecaffe's code (its first line included)."""
    return any("/firecaffe/" in line for line in out.splitlines() if line.strip().startswith('File "'))


def interrupted_at(delay, tmp_path, ranks=None):
    env = dict(os.environ, PYTHONPATH=str(REPO), FIRECAFFE_NO_PROGRESS="1", FIRECAFFE_MPI_INIT_TIMEOUT="20")
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
        if not in_firecaffe(out) and ("Traceback" in out or "firecaffe" not in out):
            continue                        # Python's own start-up, before firecaffe's first line
        if ranks and code == 0 and "Optimization Done." in out and "firecaffe:" not in out:
            continue                        # mpiexec had not started the ranks: it dropped the signal
        assert "Traceback" not in out and "KeyboardInterrupt" not in out and "Aborted" not in out, (delay, out[-3000:])
        assert code == 130 and "firecaffe: stopped by SIGINT at iteration" in out, (delay, code, out[-3000:])
        stopped += 1
    assert stopped >= 3, "most delays should land in firecaffe's own start-up or training"


def test_a_rank_whose_peer_never_joins_does_not_wait_forever_in_mpi_init(tmp_path):
    """MPICH waits forever in MPI_Init for a rank that ended before joining (seen when a Ctrl-C
    killed one rank inside Python's own start-up): FIRECAFFE_MPI_INIT_TIMEOUT ends the job."""
    pytest.importorskip("mpi4py")
    script = tmp_path / "one_rank_quits.py"
    script.write_text("import os, sys\n"
                      "if os.environ['PMI_RANK'] == '0':\n    sys.exit(1)\n"
                      "from firecaffe.run import mpi_util\n"
                      "mpi_util.world().Barrier()\n")
    env = dict(os.environ, PYTHONPATH=str(REPO), FIRECAFFE_MPI_INIT_TIMEOUT="3")
    start = time.monotonic()
    done = subprocess.run(["mpiexec", "-n", "2", sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=60, start_new_session=True)
    assert done.returncode != 0 and time.monotonic() - start < 30, done
    assert "signal 14" in done.stdout + done.stderr or "Alarm clock" in done.stdout + done.stderr, done
