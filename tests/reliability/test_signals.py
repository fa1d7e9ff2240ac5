"""Signals stop, snapshot or interrupt a training job the way Caffe and a cluster expect: on every
rank at the same iteration, with a snapshot that --resume-latest continues exactly, one line, and
the exit status 128 + the signal's number. Signals go to mpiexec (as Ctrl-C and scancel do) and to
a single rank."""
import filecmp
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from firecaffe.run.signals import Action, Signals, SNAPSHOT, STOP
from firecaffe.solvers import snapshot as snapshots

from tests import _required

TRAIN = ["-m", "firecaffe", "train", "nets/lenet_digits/solver.prototxt", "--test-interval", "0",
         "--display", "1", "--global-batch", "24"]
ITERATION_3 = r"Iteration (?:[3-9]|\d\d+) \("
STOPPED = re.compile(r"firecaffe: stopped by (SIG\w+) at iteration (\d+); snapshot (\S+)")


class Job:
    """A training job in a session of its own, its output in a file; killed whole at the end."""

    def __init__(self, tmp_path, args, ranks=None):
        self.log = tmp_path / f"log-{time.monotonic_ns()}"
        command = [sys.executable, *map(str, args)]
        if ranks:
            mpiexec = shutil.which("mpiexec")
            if mpiexec is None:
                _required.missing("mpiexec not found (pip install 'firecaffe[mpich]')")
            command = [mpiexec, "-n", str(ranks), *command]
        self.tag = f"FIRECAFFE_TEST_JOB={self.log.name}".encode()
        env = dict(os.environ, FIRECAFFE_NO_PROGRESS="1", FIRECAFFE_TEST_JOB=self.log.name,
                   PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)

    def text(self):
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.text()):
                return
            if self.process.poll() is not None:
                pytest.fail(f"the job ended before {pattern!r}:\n{self.text()[-3000:]}")
            time.sleep(0.1)
        self.kill()
        pytest.fail(f"no {pattern!r} after {timeout} s:\n{self.text()[-3000:]}")

    def rank_pid(self, rank):
        """The pid of MPI rank ``rank`` among this job's processes."""
        for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    variables = f.read().split(b"\0")
            except OSError:
                continue
            if self.tag in variables and f"PMI_RANK={rank}".encode() in variables:
                return pid
        pytest.fail(f"rank {rank} not found")

    def finish(self, timeout):
        """Exit status and seconds to end; the job fails the test if it outlives ``timeout``."""
        start = time.monotonic()
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"still running {timeout} s after the signal:\n{self.text()[-3000:]}")
        return code, time.monotonic() - start

    def kill(self):
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def interrupt(tmp_path, sig, ranks=None, to_rank=None, extra=()):
    """Start training, send ``sig`` once iteration 3 is logged; return (code, seconds, log, match)."""
    job = Job(tmp_path, [*TRAIN, "--max-iter", 100000, "--snapshot-prefix", tmp_path / "x", *extra], ranks)
    try:
        job.wait_for(ITERATION_3)
        os.kill(job.rank_pid(to_rank) if to_rank is not None else job.process.pid, sig)
        code, seconds = job.finish(timeout=60)
    finally:
        job.kill()
    log = job.text()
    return code, seconds, log, STOPPED.search(log)


def resume_matches_uninterrupted(launch, tmp_path, stopped_at, ranks=None, extra=()):
    """--resume-latest to stopped_at + 5 ends with the weights of a run that never stopped."""
    end = stopped_at + 5
    resumed = launch(["python", *TRAIN, "--max-iter", end, "--snapshot-prefix", tmp_path / "x",
                      "--resume-latest", tmp_path / "x", *extra], ranks=ranks, timeout=180)
    assert resumed.returncode == 0, str(resumed)
    assert f"at iteration {stopped_at}" in resumed.stderr + resumed.stdout
    whole = launch(["python", *TRAIN, "--max-iter", end, "--snapshot-prefix", tmp_path / "whole", *extra],
                   ranks=ranks, timeout=300)
    assert whole.returncode == 0, str(whole)
    assert filecmp.cmp(tmp_path / f"x_iter_{end}.caffemodel", tmp_path / f"whole_iter_{end}.caffemodel",
                       shallow=False), "the resumed run's weights differ from the uninterrupted run's"


def test_sigint_stops_one_process_with_a_snapshot_that_resumes_exactly(launch, tmp_path):
    code, seconds, log, match = interrupt(tmp_path, signal.SIGINT)
    assert code == 130, log[-3000:]
    assert match and match.group(1) == "SIGINT", log[-3000:]
    assert os.path.exists(match.group(3)) and seconds < 10
    assert log.count("firecaffe: stopped by") == 1
    resume_matches_uninterrupted(launch, tmp_path, int(match.group(2)))


@pytest.mark.mpi
def test_ctrl_c_to_mpiexec_stops_every_rank_at_one_iteration_and_resumes_exactly(launch, tmp_path):
    _required.mpi4py()
    code, seconds, log, match = interrupt(tmp_path, signal.SIGINT, ranks=4)
    assert code == 130, log[-3000:]
    assert match and seconds < 10, log[-3000:]
    assert log.count("firecaffe: stopped by") == 1, "rank 0 speaks, once"
    assert "died without a message" not in log and "stalled" not in log
    resume_matches_uninterrupted(launch, tmp_path, int(match.group(2)), ranks=4)


@pytest.mark.mpi
@pytest.mark.parametrize("comm,rank,sig", [("tree", None, signal.SIGTERM), ("ring", 2, signal.SIGTERM),
                                           ("ps", 3, signal.SIGUSR1), ("ps", None, signal.SIGTERM)])
def test_cluster_signals_snapshot_and_stop_the_job(tmp_path, comm, rank, sig):
    """scancel/time limit (SIGTERM) and #SBATCH --signal (SIGUSR1), to mpiexec or to one rank (a
    parameter server included): every rank ends within 10 s, rank 0 has written the snapshot."""
    _required.mpi4py()
    code, seconds, log, match = interrupt(tmp_path, sig, ranks=4, to_rank=rank, extra=["--comm", comm])
    assert code == 128 + sig, log[-3000:]
    assert match and match.group(1) == sig.name and os.path.exists(match.group(3)), log[-3000:]
    assert seconds < 10
    assert "died without a message" not in log


@pytest.mark.mpi
def test_parameter_server_stop_resumes_exactly(launch, tmp_path):
    _required.mpi4py()
    extra = ["--comm", "ps", "--type", "Adam", "--base-lr", "0.001"]
    code, _, log, match = interrupt(tmp_path, signal.SIGTERM, ranks=3, to_rank=2, extra=extra)
    assert code == 143 and match, log[-3000:]
    resume_matches_uninterrupted(launch, tmp_path, int(match.group(2)), ranks=3, extra=extra)


def test_sighup_snapshots_and_training_goes_on(tmp_path):
    job = Job(tmp_path, [*TRAIN, "--max-iter", 100000, "--snapshot-prefix", tmp_path / "x"])
    try:
        job.wait_for(ITERATION_3)
        os.kill(job.process.pid, signal.SIGHUP)
        job.wait_for(r"Snapshotting solver state")
        assert job.process.poll() is None, "SIGHUP must not stop training (--sighup-effect snapshot)"
        os.kill(job.process.pid, signal.SIGTERM)
        code, _ = job.finish(timeout=60)
    finally:
        job.kill()
    assert code == 143
    assert len(list(tmp_path.glob("x_iter_*.solverstate"))) == 2


def test_second_ctrl_c_exits_at_once_without_a_snapshot(tmp_path):
    # the first Ctrl-C lands in a long test pass, so the iteration boundary it waits for is far
    job = Job(tmp_path, [*TRAIN, "--max-iter", 100000, "--snapshot-prefix", tmp_path / "x",
                         "--test-interval", 5, "--test-iter", 100000])
    try:
        job.wait_for(r"Testing net")
        os.kill(job.process.pid, signal.SIGINT)
        time.sleep(0.5)
        assert job.process.poll() is None, "the first Ctrl-C waits for the iteration boundary"
        os.kill(job.process.pid, signal.SIGINT)
        code, seconds = job.finish(timeout=10)
    finally:
        job.kill()
    assert code == 130
    assert "interrupted again" in job.text(), job.text()[-2000:]
    assert not list(tmp_path.glob("x_iter_*"))


@pytest.mark.mpi
def test_a_rank_killed_after_a_signal_is_not_reported_as_a_crash(tmp_path):
    _required.mpi4py()
    job = Job(tmp_path, [*TRAIN, "--max-iter", 100000, "--snapshot-prefix", tmp_path / "x",
                         "--sighup-effect", "none"], ranks=3)
    try:
        job.wait_for(ITERATION_3)
        pid = job.rank_pid(1)
        os.kill(pid, signal.SIGHUP)
        time.sleep(1.0)
        os.kill(pid, signal.SIGKILL)
        job.finish(timeout=60)
    finally:
        job.kill()
    log = job.text()
    assert "rank 1 of 3" in log and "after a signal SIGHUP received" in log, log[-3000:]
    assert "out-of-memory" not in log


def test_signal_effects_and_exit_codes():
    s = Signals(sigint_effect="snapshot", sighup_effect="stop", snapshot_on_stop=False)
    s.receive(signal.SIGINT)
    first = s.agree(5)
    assert first.snapshot and not first.stop
    assert not s.agree(6), "a snapshot request is acted on once"
    s.receive(signal.SIGHUP)
    stop = s.agree(7)
    assert first.signal_name == "SIGINT"
    assert stop.stop and not stop.snapshot and stop.exit_code == 129 and stop.signal_name == "SIGHUP"
    s.receive(signal.SIGTERM)
    term = s.agree(8)
    assert term.stop and term.snapshot and term.signal_name == "SIGHUP", "the first stop's signal names it"
    assert Action(STOP | SNAPSHOT | 1 << (8 + signal.SIGUSR1)).exit_code == 138
    with pytest.raises(ValueError):
        Signals(sigint_effect="halt")


@pytest.mark.mpi
@pytest.mark.slow
def test_ctrl_c_stops_128_ranks_at_one_iteration(tmp_path):
    """128 ranks on 2 cores: each rank's step is slow, so the bound is looser than the 10 s of
    smaller jobs (7.6 s measured when the machine was shared)."""
    _required.mpi4py()
    code, seconds, log, match = interrupt(tmp_path, signal.SIGINT, ranks=128, extra=["--global-batch", 128])
    assert code == 130 and match and os.path.exists(match.group(3)), log[-3000:]
    assert log.count("firecaffe: stopped by") == 1 and seconds < 20


# The snapshot at the end of training survives a signal that arrives while rank 0 writes it
# (SLURM's time limit or scancel at the wrong moment): every rank waits for rank 0 before it ends,
# with its signal handlers in place, so the launcher has no dead rank to tear the job down for.
@pytest.mark.mpi
@pytest.mark.parametrize("sig, to", [(signal.SIGTERM, "mpiexec"), (signal.SIGINT, "mpiexec"),
                                     (signal.SIGUSR1, "mpiexec"), (signal.SIGTERM, 1)])
def test_a_signal_during_the_final_snapshot_loses_nothing(tmp_path, sig, to):
    pytest.importorskip("mpi4py")
    prefix = tmp_path / "x"
    job = Job(tmp_path, ["tests/reliability/fault_train.py", 0, 6, "slow-snapshot:3", "--", *TRAIN[2:],
                         "--max-iter", 6, "--snapshot-prefix", prefix], ranks=2)
    try:
        job.wait_for("WRITING THE SNAPSHOT", timeout=120)
        os.kill(job.process.pid if to == "mpiexec" else job.rank_pid(to), sig)
        code, seconds = job.finish(timeout=60)
    finally:
        job.kill()
    log = job.text()
    assert code == 0, log[-3000:]
    assert snapshots.latest(str(prefix)) == f"{prefix}_iter_6.solverstate", log[-3000:]
    assert "Optimization Done." in log and "killed" not in log and "BAD TERMINATION" not in log, log[-3000:]
    if to == "mpiexec":
        assert f"firecaffe: {sig.name} received as training ended (iteration 6)" in log, log[-3000:]


@pytest.mark.mpi
def test_the_time_limit_warning_after_training_ends_is_ignored(tmp_path):
    """SLURM's SIGUSR1 reaching a rank after its training ended (its handlers given back, MPI_Finalize
    still to come): the rank ignores it and the job ends with status 0, so train.sbatch does not
    requeue a finished job (with USR1's default action the rank died, status 138)."""
    pytest.importorskip("mpi4py")
    job = Job(tmp_path, ["tests/reliability/fault_train.py", 1, 0, "slow-exit:4", "--", *TRAIN[2:],
                         "--max-iter", 4, "--snapshot-prefix", tmp_path / "x"], ranks=2)
    try:
        job.wait_for("TRAINING OVER", timeout=120)
        os.kill(job.rank_pid(1), signal.SIGUSR1)
        code, seconds = job.finish(timeout=60)
    finally:
        job.kill()
    log = job.text()
    assert code == 0 and "Optimization Done." in log and "BAD TERMINATION" not in log, log[-3000:]


def test_signals_leave_ignore_after_ignored():
    """``ignore_after`` signals stay ignored after uninstall; the others get their handlers back."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGHUP)}
    try:
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        Signals(ignore_after=("SIGUSR1",)).install().uninstall()
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGHUP) == previous[signal.SIGHUP]
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        Signals().install().uninstall()
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@pytest.mark.mpi
def test_a_rank_killed_while_writing_a_snapshot_is_reported_there(tmp_path):
    """Rank 0 SIGKILLed mid-snapshot: its watcher's last sign of life is the snapshot, not the allreduce."""
    pytest.importorskip("mpi4py")
    job = Job(tmp_path, ["tests/reliability/fault_train.py", 0, 4, "slow-snapshot:20", "--", *TRAIN[2:],
                         "--max-iter", 100000, "--snapshot-every", 4, "--snapshot-prefix", tmp_path / "x"], ranks=2)
    try:
        job.wait_for("WRITING THE SNAPSHOT", timeout=120)
        os.kill(job.rank_pid(0), signal.SIGKILL)
        job.finish(timeout=60)
    finally:
        job.kill()
    log = job.text()
    assert re.search(r"rank 0 of 2 \(pid \d+ on \S+\) died without a message .*; its last sign of life: "
                     rf"iteration 4, writing the snapshot {tmp_path / 'x'}_iter_4.solverstate", log), log[-3000:]
