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


def batch_lines(log):
    return re.findall(r"\] (Batch \d+, \w+ = [0-9.e+-]+)", log)


def test_test_on_three_ranks_spreads_batches_and_matches_one_process(weights):
    code, one = firecaffe(None, "test", "--model", NET, "--weights", weights)
    assert code == 0, one[-3000:]
    code, many = firecaffe(3, "test", "--model", NET, "--weights", weights)
    assert code == 0, many[-3000:]
    assert "Tested 360 samples in 3 batch(es) on 3 ranks" in many
    assert many.count("] accuracy = ") == 1, "rank 0 speaks, once"
    assert batch_lines(many) == batch_lines(one) and len(batch_lines(one)) == 6
    assert means(many) == means(one)


@pytest.mark.parametrize("ranks", [None, 4])
def test_every_sample_counts_once_when_the_batch_does_not_divide_the_source(weights, tmp_path, ranks):
    # 360 samples in batches of 100 (and 4 ranks hold 400): the last batch holds the 60 left
    net = tmp_path / "b100.prototxt"
    net.write_text((REPO / NET).read_text().replace("batch_size: 120", "batch_size: 100"))
    code, log = firecaffe(ranks, "test", "--model", net, "--weights", weights)
    assert code == 0, log[-3000:]
    assert "Tested 360 samples in 4 batch(es)" in log and "wrapped" not in log
    code, whole = firecaffe(None, "test", "--model", NET, "--weights", weights)
    mean, reference = means(log), means(whole)            # batches of 120: the same samples, once each
    assert mean.keys() == reference.keys() == {"accuracy", "loss"}
    for key in mean:
        assert float(mean[key]) == pytest.approx(float(reference[key]), rel=1e-5)


def test_a_given_number_of_batches_gives_one_processs_numbers(weights):
    code, one = firecaffe(None, "test", "--model", NET, "--weights", weights, "--iterations", 4)
    code2, many = firecaffe(2, "test", "--model", NET, "--weights", weights, "--iterations", 4)
    assert code == code2 == 0, one[-3000:] + many[-3000:]
    assert "Tested 480 samples in 4 batch(es) on 2 ranks (the source holds 360; the stream wrapped around)" in many
    assert batch_lines(many) == batch_lines(one) and means(many) == means(one)


def test_time_under_mpiexec_is_printed_once(weights):
    code, log = firecaffe(2, "time", "--model", NET, "--iterations", 2)
    assert code == 0, log[-3000:]
    assert log.count("Average Forward pass") == 1 and "rank 0 times the net" in log
