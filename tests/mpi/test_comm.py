"""The strategies under mpiexec: every strategy against a NumPy sum, and failing ranks."""
import pytest


@pytest.mark.mpi
@pytest.mark.parametrize("num_workers", [1, 2, 3, 4, 5])
def test_every_strategy_sums_and_steps_like_numpy(run_mpi, num_workers):
    # One launch per worker count checks tree, ring, mpi and ps (1 and 2 servers) on every size and dtype:
    # allreduce_, and the step (reduce, the caller's update of the window it returns, publish).
    run = run_mpi(num_workers + 2, ["check_reducers.py", num_workers], timeout=90)
    assert run.returncode == 0, str(run)
    assert f"on {num_workers} workers, 0 failed" in run.stdout, str(run)
    assert "BucketReducer: buckets reduced in the background" in run.stdout, str(run)


@pytest.mark.mpi
def test_every_strategy_sums_alike_when_its_waits_sleep(run_mpi):
    # FIRECAFFE_WAIT=sleep (what `firecaffe cluster exec` sets when the nodes' ranks outnumber the
    # cores): the same sums, with every firecaffe strategy's waits testing and sleeping
    run = run_mpi(5, ["check_reducers.py", 3], env={"FIRECAFFE_WAIT": "sleep"}, timeout=90)
    assert run.returncode == 0, str(run)
    assert "on 3 workers, 0 failed" in run.stdout, str(run)


@pytest.mark.mpi
def test_bucket_reducer_falls_back_to_wait_without_thread_multiple(run_mpi):
    run = run_mpi(4, ["check_reducers.py", 2], env={"MPI4PY_RC_THREAD_LEVEL": "serialized"}, timeout=90)
    assert run.returncode == 0, str(run)
    assert "BucketReducer: buckets reduced at wait()" in run.stdout, str(run)


@pytest.mark.mpi
@pytest.mark.parametrize("kind, message", [
    ("firecaffe", "firecaffe: rank 2 of 3 failed: solver.prototxt:3: unknown field 'base_lrr'"),
    ("python", "firecaffe: rank 2 of 3 failed: ZeroDivisionError: gradient scale is zero"),
    ("thread", "firecaffe: rank 2 of 3 failed: ZeroDivisionError: gradient scale is zero"),
])
def test_a_failing_rank_takes_the_job_down_naming_itself(run_mpi, kind, message):
    # Without the abort the other ranks would wait forever, so ending before the timeout is the check;
    # it leaves room for slow start-up on a loaded machine (a quiet one takes about a second).
    run = run_mpi(3, ["check_abort.py", 2, kind], timeout=60)
    assert run.returncode != 0, str(run)
    assert message in run.stderr, str(run)
    assert ("Traceback" in run.stderr) == (kind != "firecaffe"), str(run)
