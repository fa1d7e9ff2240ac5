"""`firecaffe train --compress` under mpiexec: bit-exact resume with the codecs' state, and the refusals."""
import filecmp
import json
import re
import sys
from pathlib import Path

import pytest

from firecaffe.engine.testing import run_job

pytestmark = pytest.mark.mpi
REPO = Path(__file__).resolve().parents[2]
SOLVER = "nets/lenet_digits/solver.prototxt"
COMMON = ["--test-interval", "0", "--display", "0", "--global-batch", "24", "--no-progress"]


def train(ranks, *args, timeout=120, solver=SOLVER):
    done = run_job([sys.executable, "-m", "firecaffe", "train", str(solver), *map(str, args)], ranks=ranks,
                   timeout=timeout, cwd=REPO)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("comm, compress, extra", [
    ("tree", "int8", []),
    ("ring", "powersgd:2", ["--compress-start", "2"]),
    ("ps", "int8", []),
    ("dbtree", "powersgd:4", ["--bucket-mb", "0.05"]),
    ("hier", "bf16", ["--snapshot-format", "HDF5"]),
    ("tree", "powersgd:4", ["--snapshot-format", "HDF5", "--type", "Adam"]),
])
def test_resumed_compressed_run_ends_with_the_uninterrupted_weights(tmp_path, comm, compress, extra):
    # 8 iterations straight == 4, snapshot (with every worker's residual and PowerSGD's Q), resume, 4 more
    args = ["--max-iter", 8, "--snapshot-every", 4, "--comm", comm, "--compress", compress, *extra, *COMMON]
    code, log = train(4, *args, "--snapshot-prefix", tmp_path / "whole")
    assert code == 0, log[-3000:]
    assert f"Gradients compressed: --compress {compress}" in log
    h5 = ".h5" if "HDF5" in extra else ""
    code, log = train(4, *args, "--snapshot-prefix", tmp_path / "resumed",
                      "--snapshot", tmp_path / f"whole_iter_4.solverstate{h5}")
    assert code == 0, log[-3000:]
    assert "start afresh" not in log, log[-3000:]
    whole, resumed = tmp_path / f"whole_iter_8.caffemodel{h5}", tmp_path / f"resumed_iter_8.caffemodel{h5}"
    if h5:
        import h5py
        import numpy as np
        with h5py.File(whole, "r") as a, h5py.File(resumed, "r") as b:
            names = []
            a.visit(lambda name: names.append(name) if isinstance(a[name], h5py.Dataset) else None)
            assert names and all(np.array_equal(a[name][()], b[name][()]) for name in names), \
                f"{comm} --compress {compress}: the resumed run's weights differ from the uninterrupted run's"
        return
    assert filecmp.cmp(whole, resumed, shallow=False), \
        f"{comm} --compress {compress}: the resumed run's weights differ from the uninterrupted run's"


@pytest.mark.parametrize("args, needle", [
    (["--compress", "powersgd:64"], "layer 'ip2' param 0 is a 10x128 matrix, whose rank is at most 10"),
    (["--comm", "mpi", "--compress", "fp16"], "--comm mpi cannot send --compress fp16: with --comm mpi use "
                                              "--compress powersgd[:RANK] or none"),
    (["--comm", "ps", "--compress", "powersgd"], "--comm ps cannot send --compress powersgd:4"),
    (["--compress", "gzip"], "unknown codec; choose none, fp16, bf16, int8 or powersgd[:RANK]"),
    (["--compress-start", "-3"], "--compress-start"),
])
def test_bad_compression_is_refused_before_the_first_iteration(args, needle):
    code, log = train(3, *args, "--max-iter", 2, *COMMON, timeout=60)
    assert code != 0
    assert needle in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert "Iteration 0" not in log and "Iteration 1" not in log


def test_a_gradient_beyond_fp16s_range_is_shifted_into_it_and_trains_as_uncompressed(tmp_path):
    # loss_weight 1e7 puts gradients far beyond 65504: fp16's per-block shift carries them, so the first
    # losses are those of the uncompressed run (an infinite one is named: tests/comm/test_compress.py)
    net = (REPO / "nets/lenet_digits/train_test.prototxt").read_text()
    loud = re.sub(r'(type:\s*"SoftmaxWithLoss")', r'\1\n  loss_weight: 1e7', net, count=1)
    assert loud != net
    (tmp_path / "net.prototxt").write_text(loud)
    solver = (REPO / SOLVER).read_text().replace('"nets/lenet_digits/train_test.prototxt"', f'"{tmp_path / "net.prototxt"}"')
    (tmp_path / "solver.prototxt").write_text(solver)
    losses = {}
    for codec in ("none", "fp16"):
        code, log = train(3, "--compress", codec, "--max-iter", 2, *COMMON[:2], "--display", "1",
                          *COMMON[4:], solver=tmp_path / "solver.prototxt", timeout=90)
        assert code == 0 and "range" not in log, log[-3000:]
        losses[codec] = [float(v) for v in re.findall(r"Iteration \d+ \([^)]*\), loss = ([0-9.eE+-]+)", log)]
    assert len(losses["none"]) == 2 and losses["none"][1] > 1e8        # the gradient was as large as meant
    assert losses["fp16"] == pytest.approx(losses["none"], rel=1e-3)


def test_pycaffe_solver_classes_take_compression_through_the_run_options():
    done = run_job([sys.executable, str(Path(__file__).parent / "check_pycaffe_compress.py")], ranks=2, timeout=90,
                   cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "same on every rank True, differs from none True, close True" in done.stdout, done.stdout + done.stderr


def test_bench_comm_times_each_strategy_through_the_codec(tmp_path):
    done = run_job([sys.executable, "-m", "firecaffe", "bench", "comm", "--comm", "tree,ring,mpi", "--sizes", "64K",
                    "--repeats", "1", "--warmup", "0", "--compress", "int8", "--json", str(tmp_path / "b.json"),
                    "--quiet"], ranks=3, timeout=90, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    records = {record["comm"]: record for record in json.loads((tmp_path / "b.json").read_text())}
    for name in ("tree", "ring"):
        assert records[name]["compress"] == "int8" and records[name]["correct"], records[name]
        assert records[name]["wire_bytes"] == 16384 + 4 * 64, records[name]
    assert records["mpi"]["compress"] == "none" and records["mpi"]["wire_bytes"] == 65536   # the float32 baseline
    assert "--compress int8 (16.2 KiB on the wire)" in done.stdout
