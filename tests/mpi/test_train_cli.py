"""`firecaffe train` under mpiexec as users run it: many ranks, bucketed overlap,
and set-ups that must be refused with a clear message before any work."""
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from firecaffe.proto import io
from firecaffe.engine.testing import run_job

pytestmark = pytest.mark.mpi
REPO = Path(__file__).resolve().parents[2]
SOLVER = "nets/lenet_digits/solver.prototxt"


def train(ranks, *args, timeout=240):
    done = run_job([sys.executable, "-m", "firecaffe", "train", SOLVER, *args], ranks=ranks or None,
                   timeout=timeout, cwd=REPO)
    return done.returncode, done.stdout + done.stderr


def final_accuracy(log):
    values = re.findall(r"Test net output #0: accuracy = ([0-9.]+)", log)
    assert values, log[-3000:]
    return float(values[-1])


@pytest.mark.slow
def test_16_ranks_train_to_the_accuracy_of_one(tmp_path):
    common = ["--global-batch", 64, "--max-iter", 300, "--display", 0, "--test-interval", 300]
    code, one = train(0, *common, "--snapshot-prefix", tmp_path / "one")
    assert code == 0, one[-3000:]
    code, many = train(16, *common, "--snapshot-prefix", tmp_path / "many")
    assert code == 0, many[-3000:]
    assert final_accuracy(one) >= 0.95
    assert abs(final_accuracy(many) - final_accuracy(one)) <= 0.01


@pytest.mark.slow
def test_128_ranks_run_to_the_end(tmp_path):
    code, log = train(128, "--global-batch", 128, "--max-iter", 2, "--test-interval", 0, "--display", 1,
                      "--snapshot-prefix", tmp_path / "x", timeout=400)
    assert code == 0, log[-3000:]
    assert "communication (tree, 128 workers)" in log
    assert log.count("Optimization Done.") == 1


def test_bucketed_overlap_gives_the_same_weights_and_reports_hidden_time(tmp_path):
    common = ["--global-batch", 60, "--max-iter", 6, "--test-interval", 0, "--display", 3,
              "--check-consistency", 2]
    code, plain = train(3, *common, "--snapshot-prefix", tmp_path / "plain")
    assert code == 0, plain[-3000:]
    code, bucketed = train(3, *common, "--bucket-mb", 0.02, "--snapshot-prefix", tmp_path / "bucket")
    assert code == 0, bucketed[-3000:]
    assert "hidden behind backward" in bucketed
    a = io.read_caffemodel(str(tmp_path / "plain_iter_6.caffemodel"))
    b = io.read_caffemodel(str(tmp_path / "bucket_iter_6.caffemodel"))
    for la, lb in zip(a.layer, b.layer):
        for x, y in zip(la.blobs, lb.blobs):
            np.testing.assert_allclose(io.blob_to_array(x), io.blob_to_array(y), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("ranks, args, needle", [
    (3, ["--global-batch", 64], "--global-batch 64 does not divide evenly among 3"),
    (2, ["--comm", "ps", "--ps-servers", 2], "--ps-servers 2 with 2 rank"),
    (2, ["--comm", "nccl"], "nccl"),
    (2, ["--comm", "carrier-pigeon"], "unknown communication strategy"),
])
def test_bad_parallel_setups_fail_clearly(ranks, args, needle):
    code, log = train(ranks, *args, "--max-iter", 1, timeout=60)
    assert code != 0
    assert needle in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert "Iteration 0" not in log          # refused before any work


def test_comm_auto_says_its_choice_trains_with_it_and_reports_measured_against_predicted(tmp_path):
    from firecaffe.comm import names
    code, log = train(2, "--comm", "auto", "--bucket-mb", "auto", "--global-batch", 64, "--max-iter", 8,
                      "--test-interval", 0, "--display", 4, "--snapshot-prefix", tmp_path / "auto", timeout=120)
    assert code == 0, log[-3000:]
    chosen = re.search(r"--comm auto: (\w+), (no buckets|buckets of [0-9.]+ MB) for 0\.\d+ MiB of gradients on "
                       r"2 rank\(s\).*\(built-in probe, [0-9.]+ s; compute timed\): predicted iteration [0-9.]+ ms", log)
    assert chosen and chosen.group(1) in names(), log[-3000:]
    assert "--comm auto: runner-up" in log
    assert f"strategy {chosen.group(1)}, global batch 64" in log        # the job runs what was chosen
    assert f"communication ({chosen.group(1)}, 2 workers)" in log
    assert re.search(r"--comm auto: measured iteration [0-9.]+ ms against [0-9.]+ ms predicted", log), log[-3000:]
    assert log.index("--comm auto: runner-up") < log.index("Iteration 0")


@pytest.mark.parametrize("content, needle", [
    ("{", "is not JSON"),
    ('{"alpha_s": 1e-6, "beta_s_per_byte": 1e-9, "gamma_s_per_byte": 0, "machine": "vax 11/780"}',
     "was measured on 'vax 11/780'"),
])
def test_comm_auto_refuses_a_bad_profile_before_any_work(tmp_path, content, needle):
    profile = tmp_path / "profile.json"
    profile.write_text(content)
    code, log = train(2, "--comm", "auto", "--profile", profile, "--max-iter", 1, timeout=60)
    assert code != 0
    assert needle in log, log[-3000:]
    assert "Traceback" not in log and "Iteration 0" not in log


def test_compress_auto_chooses_among_the_codecs_only_when_asked(tmp_path):
    code, log = train(2, "--comm", "ring", "--compress", "auto", "--global-batch", 64, "--max-iter", 6,
                      "--test-interval", 0, "--display", 3, "--snapshot-prefix", tmp_path / "c", timeout=120)
    assert code == 0, log[-3000:]
    chosen = re.search(r"--compress auto: ring, no buckets(, compress (\S+))? for .* of (\d+) configurations", log,
                       re.S)
    assert chosen and int(chosen.group(3)) == 5, log[-3000:]      # none, fp16, bf16, int8, powersgd:4
    if chosen.group(2):
        assert f"Gradients compressed: --compress {chosen.group(2)} on the wire of --comm ring" in log
    code, log = train(2, "--comm", "auto", "--global-batch", 64, "--max-iter", 2, "--test-interval", 0,
                      "--snapshot-prefix", tmp_path / "d", timeout=120)
    assert code == 0 and "compress" not in re.search(r"--comm auto: .*", log).group(0)    # not asked: none


def test_log_file_holds_what_the_terminal_shows_from_every_rank(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("an earlier run's line\n")                    # appended to, as glog's files are not
    code, out = train(2, "--max-iter", 20, "--check-consistency", 10, "--log", log,
                      "--snapshot-prefix", tmp_path / "x")
    assert code == 0, out[-3000:]
    text = log.read_text()
    assert text.startswith("an earlier run's line\n")
    assert text.count("Optimization Done.") == 1 and "Trained 20 iteration(s)" in text
    assert all(line[0] in "IWEF" for line in text.splitlines()[1:]), text[-2000:]
    shown = [line.split("] ", 1)[1] for line in out.splitlines() if "] " in line and line[:1] in "IWEF"]
    assert [line.split("] ", 1)[1] for line in text.splitlines()[1:]] == shown


def test_log_file_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    code, out = train(0, "--log", tmp_path / "no" / "such" / "dir.log")
    assert code != 0
    assert "--log" in out and "No such file or directory" in out and "Iteration" not in out
