"""Data-parallel training equals single-process training on the same global batch,
for every strategy and rank count; bad set-ups fail clearly before any work."""
from pathlib import Path

import numpy as np
import pytest

from firecaffe.comm import names, strategy_class
from firecaffe.proto import io
from firecaffe.solvers import Solver
from firecaffe.core.options import RunOptions

pytestmark = pytest.mark.mpi
REPO = Path(__file__).resolve().parents[2]
GLOBAL_BATCH = 60          # divisible by every worker count from 1 to 5
STEPS = 4


def train_one_process(clip=None):
    """One process, batch 60, STEPS steps."""
    param = io.read_solver("nets/lenet_digits/solver.prototxt")
    param.display = param.test_interval = 0
    del param.test_iter[:]
    if clip is not None:
        param.clip_gradients = clip
    solver = Solver(param, options=RunOptions(global_batch=GLOBAL_BATCH))
    solver.step(STEPS)
    return solver.net.param_arena.copy()


@pytest.fixture(scope="module")
def reference():
    return train_one_process()


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


@pytest.mark.parametrize("ranks", [1, 2, 3, 4, 5])
def test_every_strategy_matches_one_process_on_the_global_batch(run_mpi, tmp_path, reference, ranks):
    # every registered strategy that runs without a GPU; those with server ranks with 1 and 2 servers
    peers = [name for name in names(default_only=True) if strategy_class(name).processes(1) == 1]
    served = [name for name in names(default_only=True) if name not in peers]
    specs = peers + [f"{name}:{s}" for name in served for s in (1, 2) if ranks > s]
    result = run_mpi(ranks, ["check_training.py", tmp_path, GLOBAL_BATCH, STEPS, *specs], timeout=150)
    assert result.returncode == 0, str(result)
    for spec in specs:
        name, _, servers = spec.partition(":")
        weights = np.load(tmp_path / f"{name}{servers}_{ranks}.npy")
        np.testing.assert_allclose(weights, reference, rtol=2e-4, atol=2e-6,
                                   err_msg=f"{spec} on {ranks} ranks differs from 1 rank")


def test_gradient_clipping_sees_the_whole_gradient_on_every_strategy(run_mpi, tmp_path):
    # Two parameter servers each hold half the gradient: the clipping norm is summed across them.
    clip = 0.05
    clipped, unclipped = train_one_process(clip), train_one_process()
    assert not np.allclose(clipped, unclipped, rtol=2e-4, atol=2e-6)     # the clip bites
    specs = ["tree", "ps:2"]
    result = run_mpi(4, ["check_training.py", tmp_path, GLOBAL_BATCH, STEPS, f"--clip={clip}", *specs], timeout=150)
    assert result.returncode == 0, str(result)
    for spec in specs:
        name, _, servers = spec.partition(":")
        weights = np.load(tmp_path / f"{name}{servers}_4.npy")
        np.testing.assert_allclose(weights, clipped, rtol=2e-4, atol=2e-6,
                                   err_msg=f"{spec} with clip_gradients differs from 1 rank")
