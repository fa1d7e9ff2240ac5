"""The `firecaffe` command as a user runs it: Caffe's log lines, clear errors, no tracebacks."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NET = "nets/lenet_digits/train_test.prototxt"
SOLVER = "nets/lenet_digits/solver.prototxt"


def firecaffe(*args, cwd=REPO, timeout=120, **settings):
    env = dict(os.environ, FIRECAFFE_NO_PROGRESS="1", **settings)
    return subprocess.run([sys.executable, "-m", "firecaffe", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_clean_failure(result, *needles):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_train_prints_caffe_log_lines_and_snapshots(tmp_path):
    prefix = str(tmp_path / "lenet")
    result = firecaffe("train", SOLVER, "--max-iter", "20", "--display", "10", "--test-interval", "20",
                       "--snapshot-prefix", prefix)
    assert result.returncode == 0, result.stderr
    log = result.stderr
    for line in ("Solving LeNetDigits", "Iteration 10 (", "iter/s", "), loss = ", "Iteration 10, lr = ",
                 "    Train net output #0: loss = ", "Iteration 20, Testing net (#0)",
                 "    Test net output #0: accuracy = ", "Snapshotting to binary proto file",
                 "Optimization Done."):
        assert line in log, f"missing {line!r} in log:\n{log}"
    assert os.path.exists(prefix + "_iter_20.caffemodel")
    assert os.path.exists(prefix + "_iter_20.solverstate")

    tested = firecaffe("test", "--model", NET, "--weights", prefix + "_iter_20.caffemodel", "--iterations", "2")
    assert tested.returncode == 0, tested.stderr
    assert "Batch 0, accuracy = " in tested.stderr and "Batch 1, loss = " in tested.stderr
    assert "] accuracy = " in tested.stderr and "] loss = " in tested.stderr


def test_train_a_bare_net_with_solver_flags(tmp_path):
    result = firecaffe("train", NET, "--base-lr", "0.05", "--max-iter", "5", "--display", "5")
    assert result.returncode == 0, result.stderr
    assert "Iteration 5, loss = " in result.stderr


def test_time_prints_per_layer_times():
    result = firecaffe("time", "--model", NET, "--iterations", "2")
    assert result.returncode == 0, result.stderr
    assert "conv1\tforward: " in result.stderr and "conv1\tbackward: " in result.stderr
    assert "Average Forward-Backward: " in result.stderr


def test_time_prints_each_layers_engine():
    from firecaffe.ops import dnnl
    result = firecaffe("time", "--model", NET, "--iterations", "1")
    assert result.returncode == 0, result.stderr
    conv = dnnl.VERSION if dnnl.AVAILABLE else "NumPy"
    assert f"conv1\tengine: {conv}" in result.stderr and f"pool1\tengine: {conv}" in result.stderr
    # the in-place ReLU after conv1 runs as conv1's oneDNN post-op (engine/fusion.py); FIRECAFFE_FUSE_RELU=0: apart
    assert ("relu1\tengine: fused into conv1" if dnnl.AVAILABLE else "relu1\tengine: NumPy") in result.stderr
    apart = firecaffe("time", "--model", NET, "--iterations", "1", FIRECAFFE_FUSE_RELU="0")
    assert "relu1\tengine: NumPy" in apart.stderr


def test_time_names_the_cpu_libraries_and_openblas_kernels():
    """`firecaffe time` says which BLAS kernels ran: OPENBLAS_CORETYPE changes them (Haswell's
    halve the GEMM rate of an AVX-512 machine), and a timing means little without them."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from firecaffe.ops import dnnl
    result = firecaffe("time", "--model", NET, "--iterations", "1", OPENBLAS_CORETYPE="Haswell")
    assert result.returncode == 0, result.stderr
    line = next(l for l in result.stderr.splitlines() if "CPU libraries: " in l)
    assert (dnnl.VERSION if dnnl.AVAILABLE else "oneDNN not loaded") in line
    import numpy  # noqa: F401  (loads OpenBLAS where NumPy was built with it)
    if any(i.get("internal_api") == "openblas" for i in threadpoolctl.threadpool_info()):
        assert "OpenBLAS " in line and "(Haswell kernels, " in line, line


def test_analyze_json_totals():
    result = firecaffe("analyze", NET, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    expected = (20 * 9 + 20) + (50 * 20 * 9 + 50) + (128 * 200 + 128) + (10 * 128 + 10)
    assert report["params"] == expected
    assert report["param_bytes"] == 4 * expected
    conv1 = next(r for r in report["layers"] if r["name"] == "conv1")
    assert conv1["flops"] >= 2 * 120 * 20 * 64 * 9


def test_weights_and_snapshot_together_are_refused():
    assert_clean_failure(firecaffe("train", SOLVER, "--weights", "a.caffemodel", "--snapshot", "b.solverstate"),
                         "not both")


@pytest.mark.parametrize("text, needle", [
    ('layer { name: "a" type: "ReLU" bottom: "x" top: "y" }\nlayer { nme: "b" }', ":2:"),
    ('layer { name: "a" type: "Mystery" top: "y" }', "unknown layer type 'Mystery'"),
    ('layer { name: "a" type: "ReLU" bottom: "nowhere" top: "y" }', "unknown bottom blob 'nowhere'"),
])
def test_bad_prototxt_gets_one_clear_message(tmp_path, text, needle):
    path = tmp_path / "bad.prototxt"
    path.write_text(text)
    assert_clean_failure(firecaffe("analyze", str(path)), needle)


def test_missing_hdf5_source_names_the_path(tmp_path):
    text = open(os.path.join(REPO, NET)).read().replace("nets/lenet_digits/test.txt", str(tmp_path / "nope.txt"))
    path = tmp_path / "net.prototxt"
    path.write_text(text)
    assert_clean_failure(firecaffe("analyze", str(path)), "nope.txt")


def test_negative_max_iter_is_refused():
    assert_clean_failure(firecaffe("train", SOLVER, "--max-iter", "-1"), "max_iter")


def test_every_train_option_says_what_it_does():
    from firecaffe.cli.train import train
    undescribed = [p.opts[0] for p in train.params if isinstance(p, __import__("click").Option) and not p.help]
    assert undescribed == []


@pytest.mark.parametrize("command, default", [(["analyze"], "TEST"), (["time"], "TRAIN"), (["test"], "TEST"),
                                              (["bench", "comm"], "TEST")])
def test_phase_is_shown_with_caffes_names_and_its_default(command, default):
    from click.testing import CliRunner
    from firecaffe.cli import cli
    text = " ".join(CliRunner().invoke(cli, [*command, "--help"]).output.split())
    assert "--phase [TRAIN|TEST]" in text and f"[default: {default}]" in text


def test_test_scores_a_net_without_a_data_source(tmp_path):
    net = tmp_path / "dummy.prototxt"
    net.write_text('name: "d"\nlayer { name: "x" type: "DummyData" top: "x" dummy_data_param { shape { dim: 4 '
                   'dim: 3 } data_filler { type: "constant" value: 2 } } }\nlayer { name: "s" type: "Reduction" '
                   'bottom: "x" top: "s" reduction_param { operation: SUMSQ } }\n')
    result = firecaffe("test", "--model", str(net), "--iterations", "2")
    assert result.returncode == 0, result.stderr
    assert "Batch 1, s = 48" in result.stderr and "] s = 48" in result.stderr and "Tested" not in result.stderr
