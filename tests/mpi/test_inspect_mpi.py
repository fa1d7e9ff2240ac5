"""`firecaffe test` and `firecaffe time` under mpiexec: rank 0 speaks once; test spreads its batches
over the ranks and reduces the outputs, giving what one process gives on the same samples."""
import re
import sys
from pathlib import Path

import pytest

from firecaffe.engine.testing import run_job

pytestmark = pytest.mark.mpi
REPO = Path(__file__).resolve().parents[2]
NET = "nets/lenet_digits/train_test.prototxt"


def firecaffe(ranks, *args, timeout=240):
    done = run_job([sys.executable, "-m", "firecaffe", *map(str, args)], ranks=ranks, timeout=timeout, cwd=REPO)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("w") / "lenet"
    code, log = firecaffe(None, "train", "nets/lenet_digits/solver.prototxt", "--max-iter", 30,
                          "--test-interval", 0, "--display", 0, "--snapshot-prefix", prefix)
    assert code == 0, log[-3000:]
    return f"{prefix}_iter_30.caffemodel"


def means(log):
    return dict(re.findall(r"\] (accuracy|loss) = ([0-9.e+-]+)", log))


def test_test_defaults_to_one_pass_and_says_how_many_samples(weights):
    code, log = firecaffe(None, "test", "--model", NET, "--weights", weights)
    assert code == 0, log[-3000:]
    assert "Testing one pass over the 360 samples of the source: 3 batch(es) of 120" in log
    assert "Tested 360 samples in 3 batch(es)" in log


def test_test_on_three_ranks_spreads_batches_and_matches_one_process(weights):
    code, one = firecaffe(None, "test", "--model", NET, "--weights", weights)
    assert code == 0, one[-3000:]
    code, many = firecaffe(3, "test", "--model", NET, "--weights", weights)
    assert code == 0, many[-3000:]
    assert "Tested 360 samples in 1 batch(es) on 3 ranks" in many
    assert many.count("accuracy = ") == 2, "rank 0 speaks, once (one batch line, one mean)"
    assert means(many) == means(one)


def test_time_under_mpiexec_is_printed_once(weights):
    code, log = firecaffe(2, "time", "--model", NET, "--iterations", 2)
    assert code == 0, log[-3000:]
    assert log.count("Average Forward pass") == 1 and "rank 0 times the net" in log
