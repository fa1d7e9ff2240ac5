"""--compress under mpiexec: every strategy x codec against a float64 sum (tests/mpi/check_compress.py)."""
import pytest


@pytest.mark.mpi
@pytest.mark.parametrize("num_workers", [2, 3, 4])
def test_every_strategy_and_codec_sums_within_the_codecs_bound(run_mpi, num_workers):
    run = run_mpi(num_workers + 1, ["check_compress.py", num_workers], timeout=120)
    assert run.returncode == 0, str(run)
    assert f"on {num_workers} workers, 0 failed" in run.stdout, str(run)
