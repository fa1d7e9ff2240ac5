"""Across emulated nodes (2 ranks on each of 3 nodes), every strategy trains like one process on the
same global batch: hier's leaders, dbtree's two trees and the others really go over the links."""
import numpy as np
import pytest

from firecaffe.core.options import RunOptions
from firecaffe.proto import io
from firecaffe.solvers import Solver

from .conftest import REPO, cluster_job, make_cluster

pytestmark = pytest.mark.mpi
GLOBAL_BATCH, STEPS = 60, 2


def train_one_process():
    param = io.read_solver(str(REPO / "nets/lenet_digits/solver.prototxt"))
    param.display = param.test_interval = 0
    del param.test_iter[:]
    solver = Solver(param, options=RunOptions(global_batch=GLOBAL_BATCH))
    solver.step(STEPS)
    return solver.net.param_arena.copy()


def test_hier_and_dbtree_across_nodes_equal_one_process(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    specs = ["hier", "dbtree"]
    with make_cluster(3, "1G", ppn=2):
        run = cluster_job(["exec", "--name", "fct", "--", "python", REPO / "tests/mpi/check_training.py", tmp_path,
                           GLOBAL_BATCH, STEPS, *specs], timeout=150)
        assert run.returncode == 0, str(run)
    reference = train_one_process()
    for name in specs:
        np.testing.assert_allclose(np.load(tmp_path / f"{name}_6.npy"), reference, rtol=2e-4, atol=2e-6,
                                   err_msg=f"{name} on 3 nodes x 2 ranks differs from 1 process")
