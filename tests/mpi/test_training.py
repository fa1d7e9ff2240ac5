"""Data-parallel training equals single-process training on the same global batch,
for every strategy and rank count; bad set-ups fail clearly before any work."""
from pathlib import Path

import numpy as np
import pytest

from firecaffe.proto import io
from firecaffe.solvers import Solver
from firecaffe.cli.train import batch_hook

pytestmark = pytest.mark.mpi
REPO = Path(__file__).resolve().parents[2]
GLOBAL_BATCH = 60          # divisible by every worker count from 1 to 5
STEPS = 4


@pytest.fixture(scope="module")
def reference():
    """One process, batch 60, STEPS steps."""
    param = io.read_solver("nets/lenet_digits/solver.prototxt")
    param.display = param.test_interval = 0
    del param.test_iter[:]
    solver = Solver(param, train_net_hook=batch_hook(GLOBAL_BATCH, 1))
    solver.step(STEPS)
    return solver.net.param_arena.copy()


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


@pytest.mark.parametrize("ranks", [1, 2, 3, 4, 5])
def test_every_strategy_matches_one_process_on_the_global_batch(run_mpi, tmp_path, reference, ranks):
    specs = ["tree", "ring", "mpi"] + (["ps:1"] if ranks >= 2 else []) + (["ps:2"] if ranks >= 3 else [])
    result = run_mpi(ranks, ["check_training.py", tmp_path, GLOBAL_BATCH, STEPS, *specs], timeout=150)
    assert result.returncode == 0, str(result)
    for spec in specs:
        name, _, servers = spec.partition(":")
        weights = np.load(tmp_path / f"{name}{servers}_{ranks}.npy")
        np.testing.assert_allclose(weights, reference, rtol=2e-4, atol=2e-6,
                                   err_msg=f"{spec} on {ranks} ranks differs from 1 rank")
