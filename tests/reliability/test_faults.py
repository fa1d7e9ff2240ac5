"""A rank that fails (an exception, SIGKILL mid-iteration or mid-collective, a NaN, a stall)
ends the whole 4-rank job within 30 s, with a message naming the rank, for every strategy."""
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.mpi
TRAIN = ["train", "nets/lenet_digits/solver.prototxt", "--max-iter", "20", "--test-interval", "0",
         "--display", "0", "--global-batch", "24"]


@pytest.fixture(name="run_with_fault")
def run_with_fault_fixture(launch):
    pytest.importorskip("mpi4py")
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


@pytest.mark.parametrize("comm, waits_in", [("tree", "the allreduce of the gradients"),
                                            ("ps", "the push of the gradients and pull of the weights")])
def test_a_stalled_rank_is_named_after_the_stall_timeout(run_with_fault, comm, waits_in):
    result = run_with_fault(2, 5, "sleep:60", comm, "--stall-timeout", "2")
    assert result.returncode != 0, str(result)
    assert result.seconds < 30, str(result)
    assert (f"rank 0 of 4: stalled: waited 2 s (--stall-timeout) in {waits_in}, iteration 5 ({comm}); "
            "rank(s) 2 have not arrived; aborting the job") in result.stderr, str(result)


def test_a_nan_gradient_names_the_iteration_layer_and_rank(run_with_fault):
    result = run_with_fault(2, 5, "nan-grad", "tree")
    assert result.returncode != 0, str(result)
    assert ("firecaffe: rank 2 of 4: error: Iteration 5: the gradients are not finite; first non-finite "
            "gradient (in backward order): parameter 0 of layer 'ip1' (InnerProduct)") in result.stderr, str(result)
