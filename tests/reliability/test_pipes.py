"""Ctrl-C typed in a real terminal (tmux) at a job whose output goes through ``| tee``: the
terminal's SIGINT kills tee too, so whatever is written to the pipe afterwards meets a dead reader.
The ranks hold their output from the signal to their end (run/held_output.py) and ignore SIGPIPE:
the job still stops at one iteration with a snapshot, says so in the log, and exits 130.

MPICH's mpiexec itself writes ``[mpiexec@host] Sending Ctrl-C to processes as requested`` to its
stderr on Ctrl-C; with ``2>&1 | tee`` that write kills it (SIGPIPE) and its proxies SIGKILL the
ranks before they even see the signal, which no rank can prevent: there ``tee -i`` (tee ignores
the Ctrl-C and reads to the end) keeps the run, as tested here."""
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from firecaffe.solvers import snapshot as snapshots

REPO = Path(__file__).resolve().parents[2]
TRAIN = ("python -m firecaffe train nets/lenet_digits/solver.prototxt --test-interval 0 --display 1 "
         "--global-batch 24 --max-iter 100000")


def ctrl_c_in_a_terminal(tmp_path, pipeline):
    """Type ``pipeline`` into a fresh tmux terminal, Ctrl-C once iteration 3 is in the log; return
    the pipeline's exit statuses (PIPESTATUS) and the log."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux not installed")
    session, log, status = f"fc-{uuid.uuid4().hex[:8]}", tmp_path / "log", tmp_path / "status"
    # with a trap on SIGINT the terminal's shell goes on to the next command after the Ctrl-C
    command = (f"cd {REPO}; export PYTHONPATH={REPO} FIRECAFFE_NO_PROGRESS=1; trap : INT; "
               f"{pipeline.format(log=log, prefix=tmp_path / 'x')}; echo ${{PIPESTATUS[@]}} > {status}")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "50", "bash", "--norc"],
                   check=True)
    try:
        subprocess.run(["tmux", "send-keys", "-t", session, command, "Enter"], check=True)
        deadline = time.monotonic() + 120
        while not (log.exists() and re.search(r"Iteration (?:[3-9]|\d\d+) \(", log.read_text(errors="replace"))):
            assert time.monotonic() < deadline and not status.exists(), log.read_text() if log.exists() else ""
            time.sleep(0.1)
        subprocess.run(["tmux", "send-keys", "-t", session, "C-c"], check=True)
        deadline = time.monotonic() + 60
        while not status.exists():
            assert time.monotonic() < deadline, "the job did not end within 60 s of Ctrl-C"
            time.sleep(0.1)
        time.sleep(0.2)
        return status.read_text().split(), log.read_text(errors="replace")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def stopped_with_a_snapshot(tmp_path, log):
    match = re.search(r"firecaffe: stopped by SIGINT at iteration (\d+); snapshot (\S+)", log)
    assert match, log[-3000:]
    assert snapshots.latest(str(tmp_path / "x")) == match.group(2) == f"{tmp_path / 'x'}_iter_{match.group(1)}.solverstate"
    assert "Traceback" not in log and "Broken pipe" not in log, log[-3000:]


def test_ctrl_c_on_one_process_behind_tee(tmp_path):
    codes, log = ctrl_c_in_a_terminal(tmp_path, TRAIN + " --snapshot-prefix {prefix} 2>&1 | tee {log}")
    # tee died of the Ctrl-C (130), so the log ends before the signal; the job stopped cleanly:
    assert codes == ["130", "130"], (codes, log[-2000:])
    assert snapshots.latest(str(tmp_path / "x")) is not None


@pytest.mark.mpi
def test_ctrl_c_on_mpiexec_behind_tee_i(tmp_path):
    pytest.importorskip("mpi4py")
    codes, log = ctrl_c_in_a_terminal(tmp_path, "mpiexec -n 2 " + TRAIN + " --snapshot-prefix {prefix} 2>&1 | tee -i {log}")
    assert codes == ["130", "0"], (codes, log[-2000:])
    stopped_with_a_snapshot(tmp_path, log)
