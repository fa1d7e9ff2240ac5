"""`firecaffe compress` / `decompress` and .fcz weights in `firecaffe test`, end to end on
lenet_digits, and one clear line for each bad input, before any work, the input untouched."""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from firecaffe.proto import io

from tests._trained import lenet_weights

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOLVER = os.path.join(REPO, "nets", "lenet_digits", "solver.prototxt")
NET = os.path.join(REPO, "nets", "lenet_digits", "train_test.prototxt")


def firecaffe(*args):
    env = dict(os.environ, PYTHONPATH=REPO, FIRECAFFE_PROGRESS="0")
    return subprocess.run([sys.executable, "-m", "firecaffe", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """lenet_digits after 200 iterations (enough to be far from chance), as a .caffemodel."""
    return lenet_weights(tmp_path_factory.mktemp("lenet") / "lenet.caffemodel", 200)


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_compress_decompress_and_test_agree(trained, tmp_path):
    out, back = str(tmp_path / "lenet.fcz"), str(tmp_path / "back.caffemodel")
    before = digest(trained)
    run = firecaffe("compress", SOLVER, "--weights", trained, "--out", out, "--density", "conv*:0.5,ip*:0.1",
                    "--prune-iters", "20", "--quantize-iters", "20", "--json", "--report")
    assert run.returncode == 0, run.stderr
    assert digest(trained) == before                       # the input is only read
    for stage in ("[start]", "[prune]", "[retrain]", "[quantize]", "[huffman]"):
        assert stage in run.stderr
    report = json.loads(run.stdout[run.stdout.index("{"):])
    assert report["total"]["stored"] == os.path.getsize(out)
    rows = {row["layer"]: row for row in report["layers"]}
    assert rows["ip1"]["density"] == pytest.approx(0.1, abs=1e-3) and rows["ip1"]["bits"] == 5
    assert rows["conv2"]["bits"] == 8
    assert report["total"]["ratio"] > 8
    assert "ip1" in run.stdout.split("{")[0]                # the table precedes the JSON
    assert firecaffe("decompress", out, "--out", back).returncode == 0
    direct = firecaffe("test", "--model", NET, "--weights", out, "--iterations", "3")
    via = firecaffe("test", "--model", NET, "--weights", back, "--iterations", "3")
    assert direct.returncode == 0, direct.stderr

    def accuracy(run):
        return [line for line in run.stderr.splitlines() if "accuracy =" in line][-1].split("=")[-1].strip()
    assert accuracy(direct) == accuracy(via)
    assert float(accuracy(direct)) == pytest.approx(report["accuracy"]["retrain shared"], abs=1e-6)
    weights = {lp.name: [io.blob_to_array(b) for b in lp.blobs] for lp in io.read_caffemodel(back).layer}
    assert np.unique(weights["ip1"][0]).size <= 32 and np.mean(weights["ip1"][0] != 0) == pytest.approx(0.1, abs=1e-3)


@pytest.mark.parametrize("flags,message", [
    (["--density", "conv*:0"], "density is the fraction of weights kept, in (0, 1]"),
    (["--density", "1.5"], "in (0, 1]; got 1.5"),
    (["--density", "0.5", "--bits", "ip*:17"], "bits must be from 1 to 16; got 17"),
    (["--density", "fc*:0.1"], "the pattern 'fc*' matches no compressible layer"),
    (["--quality", "-1"], "non-negative multiple"),
    (["--stages", "prune"], "--stages prune needs --density or --quality"),
])
def test_bad_input_is_one_line_before_work(trained, tmp_path, flags, message):
    out = str(tmp_path / "x.fcz")
    run = firecaffe("compress", SOLVER, "--weights", trained, "--out", out, *flags)
    assert run.returncode == 1
    assert message in run.stderr and run.stderr.count("\n") == 1, run.stderr
    assert not os.path.exists(out)


def test_a_bare_net_compresses_without_retraining_and_refuses_sensitivity(trained, tmp_path):
    out = str(tmp_path / "x.fcz")
    run = firecaffe("compress", NET, "--weights", trained, "--out", out, "--quality", "1.0")
    assert run.returncode == 0, run.stderr
    assert "[retrain]" not in run.stderr and os.path.exists(out)
    run = firecaffe("compress", NET, "--weights", trained, "--out", out, "--quality", "1.0", "--sensitivity",
                    str(tmp_path / "s.png"))
    assert run.returncode == 1 and "--sensitivity needs the accuracy of a test net" in run.stderr


def test_truncated_fcz_in_test_is_one_line(trained, tmp_path):
    out = str(tmp_path / "x.fcz")
    assert firecaffe("compress", NET, "--weights", trained, "--out", out, "--density", "0.3").returncode == 0
    data = open(out, "rb").read()
    open(out, "wb").write(data[:len(data) // 2])
    run = firecaffe("test", "--model", NET, "--weights", out, "--iterations", "1")
    assert run.returncode == 1 and f"{out}: truncated" in run.stderr and run.stderr.count("\n") == 1


def test_sensitivity_draws_one_curve_per_layer(trained, tmp_path):
    png = tmp_path / "s.png"
    run = firecaffe("compress", SOLVER, "--weights", trained, "--out", str(tmp_path / "x.fcz"), "--density",
                    "0.5", "--stages", "prune", "--prune-iters", "0", "--sensitivity", str(png))
    assert run.returncode == 0, run.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_weights_of_another_net_name_the_layer_before_retraining(trained, tmp_path):
    net = io.read_caffemodel(trained)
    extra = net.layer.add(name="fcX", type="InnerProduct")
    extra.blobs.add().CopyFrom(io.array_to_blob(np.ones((3, 4), np.float32)))
    other = str(tmp_path / "other.caffemodel")
    io.write_caffemodel(net, other)
    run = firecaffe("compress", SOLVER, "--weights", other, "--out", str(tmp_path / "x.fcz"), "--density", "0.5",
                    "--prune-iters", "1")
    assert run.returncode == 1 and run.stderr.count("\n") == 1
    assert "layer(s) fcX of" in run.stderr and "not in the solver's train net 'LeNetDigits'" in run.stderr
