"""SIGTERM or Ctrl-C to ``firecaffe cluster exec``: the signal reaches the job once (mpiexec runs in a
process group of its own), the command waits for the job to stop, then says so in one line and exits
128 + the signal. No cluster is needed: the state and mpiexec's command line are replaced by a stand-in
job that records the signals it gets."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

JOB = """
import os, signal, sys, time
record, stubborn = sys.argv[1], sys.argv[2] == "stubborn"
def note(text):
    with open(record, "a") as f:
        f.write(text + "\\n")
def on_signal(signum, frame):
    note(signal.Signals(signum).name)
    if not stubborn:
        time.sleep(0.5)                     # an iteration's end and a snapshot
        note("stopped")
        os._exit(128 + signum)
for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, on_signal)
note(f"ready {os.getpid()} {os.getpgid(0)}")
while True:
    time.sleep(0.05)
"""

DRIVER = """
import sys
from firecaffe import cluster as emulated
from firecaffe.cluster import launch
from firecaffe.cli import main
job, record, mode = sys.argv[1:]
emulated.require = lambda name: {"name": name}
launch.mpiexec_command = lambda state, ranks, args, command: [sys.executable, job, record, mode]
main(["cluster", "exec", "--", "train"])
"""


STARTED = []          # (driver, job's process group): killed after each test, whatever it asserted


@pytest.fixture(autouse=True)
def _no_job_outlives_its_test():
    yield
    while STARTED:
        driver, pgid = STARTED.pop()
        for group in (pgid, driver.pid if driver.poll() is None else None):     # the driver leads its session
            if group is not None:
                try:
                    os.killpg(group, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        driver.wait(timeout=30)


def _start(tmp_path, mode):
    job, record = tmp_path / "job.py", tmp_path / "record"
    job.write_text(JOB)
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(job), str(record), mode], cwd=REPO,
                              env=dict(os.environ, PYTHONPATH=str(REPO)), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    STARTED.append([driver, None])
    deadline = time.monotonic() + 60
    while not (record.exists() and record.read_text().startswith("ready")):
        assert driver.poll() is None and time.monotonic() < deadline, driver.communicate()
        time.sleep(0.05)
    _, pid, pgid = record.read_text().split()[:3]
    STARTED[-1][1] = int(pgid)
    return driver, record, int(pid), int(pgid)


def _gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("sig, to_group", [(signal.SIGTERM, False), (signal.SIGINT, True)],
                         ids=["SIGTERM-to-the-command", "Ctrl-C-to-its-process-group"])
def test_a_stop_signal_reaches_the_job_once_and_ends_in_one_line(tmp_path, sig, to_group):
    driver, record, pid, pgid = _start(tmp_path, "polite")
    assert pgid != os.getpgid(driver.pid)           # a terminal's Ctrl-C reaches the command only
    (os.killpg if to_group else os.kill)(driver.pid, sig)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == 128 + sig, err
    assert record.read_text().splitlines()[1:] == [sig.name, "stopped"]      # once, and it finished
    assert err.splitlines() == [f"firecaffe: cluster: stopped by {sig.name}, passed to the job once; "
                                f"mpiexec ended with status {128 + sig}"], err
    assert _gone(pid)


def test_a_second_signal_kills_a_job_that_does_not_stop(tmp_path):
    driver, record, pid, _ = _start(tmp_path, "stubborn")
    os.kill(driver.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while "SIGTERM" not in record.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(driver.pid, signal.SIGTERM)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == 143, err
    assert err.splitlines() == ["firecaffe: cluster: stopped by SIGTERM, passed to the job once; "
                                "mpiexec was killed (SIGKILL)"], err
    assert record.read_text().splitlines()[1:] == ["SIGTERM"]
    assert _gone(pid)
