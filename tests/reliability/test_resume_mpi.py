"""A 4-rank run interrupted at a snapshot and resumed ends with the same weights as one that
was never interrupted, for tree, ring and the parameter server."""
import filecmp

import pytest

from tests import _required

pytestmark = pytest.mark.mpi
TRAIN = ["-m", "firecaffe", "train", "nets/lenet_digits/solver.prototxt", "--max-iter", "8", "--snapshot-every", "4",
         "--test-interval", "0", "--display", "0", "--global-batch", "24", "--type", "Adam", "--base-lr", "0.01"]


@pytest.mark.parametrize("comm", ["tree", "ring", "ps"])
def test_resumed_run_ends_with_the_uninterrupted_weights(launch, tmp_path, comm):
    _required.mpi4py()
    whole = launch(["python", *TRAIN, "--comm", comm, "--snapshot-prefix", tmp_path / "whole"], ranks=4, timeout=60)
    assert whole.returncode == 0, str(whole)
    resumed = launch(["python", *TRAIN, "--comm", comm, "--snapshot-prefix", tmp_path / "resumed",
                      "--snapshot", tmp_path / "whole_iter_4.solverstate"], ranks=4, timeout=60)
    assert resumed.returncode == 0, str(resumed)
    assert filecmp.cmp(tmp_path / "whole_iter_8.caffemodel", tmp_path / "resumed_iter_8.caffemodel",
                       shallow=False), f"{comm}: the resumed run's weights differ from the uninterrupted run's"
