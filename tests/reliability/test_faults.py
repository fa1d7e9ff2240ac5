"""A rank that fails (an exception, SIGKILL mid-iteration or mid-collective, a NaN, a stall)
ends the whole 4-rank job within 30 s, with a message naming the rank, for every strategy."""
from pathlib import Path

import pytest

from tests import _required

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.mpi
TRAIN = ["train", "nets/lenet_digits/solver.prototxt", "--max-iter", "20", "--test-interval", "0",
         "--display", "0", "--global-batch", "24"]


@pytest.fixture(name="run_with_fault")
def run_with_fault_fixture(launch):
    _required.mpi4py()
    return lambda *args: run_with_fault(launch, *args)


def run_with_fault(launch, rank, iteration, kind, comm, *extra):
    return launch(["python", HERE / "fault_train.py", rank, iteration, kind, "--", *TRAIN, "--comm", comm,
                   *extra], ranks=4, timeout=45)


@pytest.mark.parametrize("comm, rank, kind, message", [
    ("tree", 2, "kill-mid", "rank 2 of 4 (pid"),
    ("ring", 1, "kill-mid", "rank 1 of 4 (pid"),
    ("mpi", 3, "kill-mid", "rank 3 of 4 (pid"),
    ("ps", 1, "kill-mid", "rank 1 of 4 (pid"),
    ("tree", 0, "kill", "rank 0 of 4 (pid"),
    ("ps", 3, "kill-server", "rank 3 of 4 (pid"),
    ("ring", 2, "raise", "firecaffe: rank 2 of 4 failed: RuntimeError: injected fault"),
    ("ps", 3, "raise-server", "firecaffe: rank 3 of 4 failed: RuntimeError: injected fault in the parameter server"),
])
def test_a_failing_rank_ends_the_job_naming_it(run_with_fault, comm, rank, kind, message):
    result = run_with_fault(rank, 5, kind, comm)
    assert result.returncode != 0, str(result)
    assert result.seconds < 30, str(result)
    assert message in result.stderr, str(result)
    if kind.startswith("kill"):
        assert "died without a message" in result.stderr and result.stderr.count("died without") == 1, str(result)


@pytest.mark.parametrize("comm, kind, extra, waits_in", [
    ("tree", "sleep:60", (), "the allreduce of the gradients"),
    ("ps", "sleep:60", (), "the push of the gradients and pull of the weights"),
    # with buckets the others' reductions already run on a background thread during backward
    ("tree", "sleep-fwd:60", ("--bucket-mb", "0.01"), "the bucketed allreduce of the gradients"),
    ("ring", "sleep:60", ("--bucket-mb", "0.01"), "the bucketed allreduce of the gradients"),
])
def test_a_stalled_rank_is_named_after_the_stall_timeout(run_with_fault, comm, kind, extra, waits_in):
    result = run_with_fault(2, 5, kind, comm, "--stall-timeout", "2", *extra)
    assert result.returncode != 0, str(result)
    assert result.seconds < 30, str(result)
    line = (f"rank 0 of 4: stalled: waited 2 s (--stall-timeout) in {waits_in}, iteration 5 ({comm}); "
            "rank(s) 2 have not arrived; aborting the job")
    assert result.stderr.count(line) == 1, str(result)      # once: MPI_Abort may return (see watchdog)


def test_a_nan_gradient_names_the_iteration_layer_and_rank(run_with_fault):
    result = run_with_fault(2, 5, "nan-grad", "tree")
    assert result.returncode != 0, str(result)
    assert ("firecaffe: rank 2 of 4: error: Iteration 5: the gradients are not finite; first non-finite "
            "gradient (in backward order): parameter 0 of layer 'ip1' (InnerProduct)") in result.stderr, str(result)


def test_stall_report_never_returns_even_if_mpi_abort_does(monkeypatch, capfd):
    # MPICH's MPI_Abort returned in some runs with a bucket thread inside a collective; the
    # watchdog thread then reported the stall again in a loop. It must end the process instead.
    from firecaffe.run import watchdog

    class World:
        aborted = 0

        def Get_rank(self):
            return 1

        def Get_size(self):
            return 4

        def Abort(self, code):
            World.aborted += 1          # and return, as MPICH sometimes does

    class Exited(Exception):
        pass

    def fake_exit(code):
        raise Exited(code)

    dog = watchdog.StallWatchdog.__new__(watchdog.StallWatchdog)
    dog.world, dog.timeout, dog.strategy, dog.rank, dog._pending, dog._cards = World(), 2.0, "tree", 1, [], []
    dog.last_words = watchdog.LastWords()              # never started: disarm does nothing
    monkeypatch.setattr(watchdog, "GRACE_SECONDS", 0.0)
    monkeypatch.setattr(watchdog.os, "_exit", fake_exit)
    with pytest.raises(Exited):
        dog._report(("the allreduce of the gradients", 5, 0.0, ["arriving"]))
    assert World.aborted == 1
    assert capfd.readouterr().err.count("stalled: waited 2 s") == 1


def test_the_watchers_of_a_killed_job_leave_no_files_behind(run_with_fault):
    import glob
    import tempfile
    import time
    pattern = f"{tempfile.gettempdir()}/firecaffe-died-*"
    before = set(glob.glob(pattern))
    result = run_with_fault(1, 3, "kill", "tree")
    assert result.returncode != 0 and "died without a message" in result.stderr, str(result)
    deadline = time.monotonic() + 30            # each watcher keeps its claim a few seconds for the others
    while set(glob.glob(pattern)) - before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not set(glob.glob(pattern)) - before
