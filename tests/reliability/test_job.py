"""Rank 0 says what the job is (ranks, nodes, strategy, global and per-rank batch, base_lr); a global
batch that grows is remarked on, or the rate scaled (--lr-scaling linear, --warmup-iters); resuming
on another number of ranks names the change of global batch and --global-batch keeps it."""
import re

import pytest

from firecaffe.solvers.batch import _warmup

from tests import _required

TRAIN = ["-m", "firecaffe", "train", "nets/lenet_digits/solver.prototxt", "--test-interval", "0"]


def rates(log):
    return {int(i): float(r) for i, r in re.findall(r"Iteration (\d+), lr = ([0-9.e+-]+)", log)}


def test_warmup_ramps_from_the_solver_rate_to_the_scaled_one():
    factor = _warmup(4, 100)
    assert factor(0) == 0.25 and factor(50) == pytest.approx(0.625) and factor(100) == 1.0 == factor(10**6)


def test_linear_scaling_with_warmup_on_one_process(launch, tmp_path):
    done = launch(["python", *TRAIN, "--max-iter", "6", "--display", "1", "--global-batch", "128",
                   "--lr-scaling", "linear", "--warmup-iters", "4", "--lr-policy", "fixed",
                   "--snapshot-prefix", tmp_path / "x"], timeout=120)
    assert done.returncode == 0, str(done)
    lr = rates(done.stderr)
    assert lr[0] == pytest.approx(0.05) and lr[2] == pytest.approx(0.075) and lr[4] == lr[5] == pytest.approx(0.1)
    assert "Job: 1 rank(s) on 1 node(s), strategy none (one process), global batch 128 (128 per rank" in done.stderr


def test_linear_scaling_needs_a_multiple_of_the_nets_batch(launch, tmp_path):
    done = launch(["python", *TRAIN, "--max-iter", "1", "--global-batch", "96", "--lr-scaling", "linear",
                   "--snapshot-prefix", tmp_path / "x"], timeout=60)
    assert done.returncode == 1 and "must be a multiple of the net's batch 64" in done.stderr, str(done)


@pytest.mark.mpi
def test_four_ranks_say_the_job_and_remark_on_the_unscaled_rate(launch, tmp_path):
    _required.mpi4py()
    done = launch(["python", *TRAIN, "--max-iter", "2", "--display", "1", "--comm", "ring",
                   "--snapshot-prefix", tmp_path / "x"], ranks=4, timeout=120)
    assert done.returncode == 0, str(done)
    assert done.stderr.count("Job: 4 rank(s) on 1 node(s), strategy ring, global batch 256 (64 per rank x 4 "
                             "worker(s)), base_lr 0.05") == 1
    assert "is 4x the net's batch (64) and the learning rate is unchanged" in done.stderr


@pytest.mark.mpi
def test_resuming_on_more_ranks_names_the_global_batch_and_global_batch_keeps_it(launch, tmp_path):
    _required.mpi4py()
    common = [*TRAIN, "--display", "0", "--snapshot-prefix", tmp_path / "x"]
    first = launch(["python", *common, "--max-iter", "2"], ranks=2, timeout=120)
    assert first.returncode == 0, str(first)
    state = tmp_path / "x_iter_2.solverstate"
    more = launch(["python", *common, "--max-iter", "3", "--snapshot", state], ranks=4, timeout=120)
    assert more.returncode == 0, str(more)
    assert "taken with global batch 128 on 2 worker(s): the global batch is now 256 (64 per rank x 4)" in more.stderr
    assert "pass --global-batch 128 to keep it" in more.stderr
    kept = launch(["python", *common, "--max-iter", "3", "--snapshot", state, "--global-batch", "128"],
                  ranks=4, timeout=120)
    assert kept.returncode == 0, str(kept)
    assert "now global batch 128 (32 per rank x 4), kept by --global-batch" in kept.stderr


def test_progress_is_forced_when_output_is_piped(launch, tmp_path):
    done = launch(["python", *TRAIN, "--max-iter", "3", "--progress", "--snapshot-prefix", tmp_path / "x"],
                  timeout=60)
    assert done.returncode == 0, str(done)
    assert re.search(r"\d+/3 ", done.stderr), done.stderr[-2000:]
