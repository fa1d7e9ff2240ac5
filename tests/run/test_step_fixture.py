"""The training step gives the same bits as when step_fixture.json was recorded (issue 20's guard).

Each case trains lenet_digits 20 iterations (1 rank; 4 ranks with every CPU strategy, with and without
buckets; a parameter server with two servers and gradient clipping) and compares the SHA-256 of the final
weights and solver state. The digests hold for the CPU and BLAS they were recorded on (each record's
fingerprint): the record of this machine's kind is the one compared.
"""
import importlib.util
import shutil
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("step_fixture", HERE / "step_fixture.py")
step_fixture = importlib.util.module_from_spec(spec)
spec.loader.exec_module(step_fixture)
RECORDED = step_fixture.matching(step_fixture.fingerprint())

pytestmark = [pytest.mark.mpi, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def same_machine():
    pytest.importorskip("mpi4py")
    if shutil.which("mpiexec") is None:
        pytest.skip("needs mpiexec (pip install 'firecaffe[mpich]')")
    if RECORDED is None:
        seen = [r["fingerprint"] for r in step_fixture.records()]
        pytest.skip(f"digests were recorded on {seen}, this machine is {step_fixture.fingerprint()}: "
                    "add its record with `python tests/run/step_fixture.py record COMMIT` on a known-good commit")


@pytest.mark.parametrize("case", list(step_fixture.CASES))
def test_final_weights_are_bit_identical_to_the_recorded_step(case):
    ranks, extra = step_fixture.CASES[case]
    assert step_fixture.run_case(ranks, extra) == RECORDED["cases"][case]
