"""`firecaffe compress` under mpiexec: retraining is data-parallel like `train`, so p ranks on a
global batch give the weights one rank gives on that batch (same masks, same shared values up to
the summation order), with every strategy."""
import sys
from pathlib import Path

import numpy as np
import pytest

from firecaffe import fcz
from firecaffe.engine.testing import run_job

from tests._trained import lenet_weights

pytestmark = pytest.mark.mpi
REPO = Path(__file__).resolve().parents[2]
SOLVER = "nets/lenet_digits/solver.prototxt"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return lenet_weights(tmp_path_factory.mktemp("lenet") / "lenet.caffemodel", 100)


def compress(ranks, trained, out, *extra, iters=6):
    done = run_job([sys.executable, "-m", "firecaffe", "compress", SOLVER, "--weights", trained, "--out", out,
                    "--density", "conv*:0.5,ip*:0.1", "--prune-iters", str(iters), "--quantize-iters", str(iters),
                    "--base-lr", "0.05", "--global-batch", "60", *extra], ranks=ranks or None, timeout=240,
                   cwd=REPO)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return {name: arrays for name, _, arrays in fcz.read(out)[1]}


@pytest.fixture(scope="module")
def one_rank(trained, tmp_path_factory):
    """What one rank makes of the global batch, and the weights before any retraining."""
    folder = tmp_path_factory.mktemp("one")
    return compress(0, trained, str(folder / "one.fcz")), compress(0, trained, str(folder / "none.fcz"), iters=0)


@pytest.mark.parametrize("ranks,comm,servers", [(2, "tree", 1), (3, "dbtree", 1), (3, "ring", 1), (2, "hier", 1),
                                                (3, "mpi", 1), (3, "ps", 1), (4, "ps", 2)])
def test_ranks_retrain_as_one_rank_on_the_global_batch(trained, one_rank, tmp_path, ranks, comm, servers):
    """With two parameter servers a layer's shared weights span both shards: their summed
    gradient is summed across the servers."""
    one, untrained = one_rank
    many = compress(ranks, trained, str(tmp_path / "many.fcz"), "--comm", comm, "--ps-servers", str(servers))
    for name, arrays in one.items():
        for a, b, c in zip(arrays, many[name], untrained[name]):
            np.testing.assert_array_equal(a == 0, b == 0)
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=name)
            assert np.abs(a - c).max() > 1e-3, f"{name}: retraining changed nothing the test could see"
