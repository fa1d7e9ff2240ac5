"""Blobs a net cannot have: more axes than Caffe's 32, and blobs that together need more memory than
the machine has (each alone fitting). Both are refused before anything is allocated, in one line
naming the file, line and layer."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

from firecaffe.core import blob as blob_module
from firecaffe.core.blob import Blob, MemoryLedger
from firecaffe.engine.net import Net
from firecaffe.errors import PrototxtError, ShapeError

REPO = Path(__file__).resolve().parents[2]


def _input_net(path, dims, layers=0, in_place=False):
    shape = " ".join(f"dim: {d}" for d in dims)
    text = [f'name: "N"\nlayer {{ name: "data" type: "Input" top: "data"\n  input_param {{ shape {{ {shape} }} }} }}']
    bottom = "data"
    for k in range(layers):
        text.append(f'layer {{ name: "p{k}" type: "Power" bottom: "{bottom}" top: "p{k}" }}')
        bottom = f"p{k}"
        if in_place:
            text[-1] = text[-1].replace(f'top: "p{k}"', 'top: "data"').replace(f'bottom: "p{k - 1}"', 'bottom: "data"')
            bottom = "data"
    path.write_text("\n".join(text) + "\n")
    return str(path)


def test_a_shape_of_a_million_axes_is_refused_before_protobuf_parses_it(tmp_path, monkeypatch):
    """The issue's case: a long shape took minutes of parsing, then NumPy's traceback."""
    path = _input_net(tmp_path / "long.prototxt", [1] * 1_000_000)
    monkeypatch.setattr(text_format, "Parse", lambda *a, **k: pytest.fail("the parser ran"))
    with pytest.raises(PrototxtError) as info:
        Net(path, phase="TEST")
    assert str(info.value) == (f"{path}:3: layer 'data': a shape of 1000000 axes; a blob has at most 32 "
                               "(Caffe's kMaxBlobAxes)")


@pytest.mark.parametrize("text, axes", [("dim: [" + ", ".join(["2"] * 33) + "]", 33),
                                        ("dim: 1 # dim: 1 dim: 1\n" * 17, 17),
                                        ("dim: [" + ", ".join(["1"] * 32) + "]", 32)])
def test_the_axes_are_counted_in_lists_and_not_in_comments(tmp_path, text, axes):
    path = tmp_path / "n.prototxt"
    path.write_text(f'layer {{ name: "d" type: "Input" top: "d" input_param {{ shape {{ {text} }} }} }}\n')
    if axes > 32:
        with pytest.raises(PrototxtError, match=f"a shape of {axes} axes"):
            Net(str(path), phase="TEST", shapes_only=True)
    else:
        assert Net(str(path), phase="TEST", shapes_only=True).blobs["d"].ndim == axes


def test_a_blob_reshaped_to_more_than_32_axes_is_refused():
    """Shapes that no prototxt spells out (pycaffe's reshape, a layer's computed top)."""
    blob = Blob((2, 3), name="x")
    blob.reshape([1] * 32)
    with pytest.raises(ShapeError, match="blob 'x': a shape of 65 axes; a blob has at most 32"):
        blob.reshape([1] * 65)
    assert blob.shape == (1,) * 32


def test_blobs_that_together_exceed_memory_are_refused_naming_the_largest(tmp_path, monkeypatch):
    monkeypatch.setattr(blob_module, "_memory_bytes", lambda: 1.5 * 2**30)
    path = _input_net(tmp_path / "sum.prototxt", [64, 1024, 1024], layers=5)     # 512 MiB a blob
    with pytest.raises(ShapeError) as info:
        Net(path, phase="TEST", shapes_only=True)
    message = str(info.value)
    assert message.startswith(f"{path}:6: layer 'p2': the net's blobs need 2 GiB together (data and diff) with "
                              "blob 'p2' (64 1024 1024) (0.5 GiB), more than the 1.5 GiB of memory here; the "
                              "largest so far: 'data' 0.5 GiB (layer 'data'), 'p0' 0.5 GiB (layer 'p0'), "), message
    # the same blobs in place (one blob, reshaped): no sum to refuse
    path = _input_net(tmp_path / "in_place.prototxt", [64, 1024, 1024], layers=5, in_place=True)
    assert Net(path, phase="TEST", shapes_only=True).ledger.total == 0.5 * 2**30


def test_weights_count_in_the_sum():
    ledger = MemoryLedger()
    ledger.layer = "ip"
    weights = Blob((2, 3), name="")
    ledger.charge_params("ip", [weights])
    assert ledger.total == 2 * 3 * 4 * 2


def test_the_command_line_refuses_a_net_of_two_blobs_each_under_the_memory_together_over(tmp_path):
    """End to end, sized from this machine: each blob 0.6 of the memory (data and diff), the net 1.2."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    count = int(0.6 * memory / 8)
    path = _input_net(tmp_path / "big.prototxt", [count // 1024, 1024], layers=1)
    done = subprocess.run([sys.executable, "-m", "firecaffe", "analyze", path], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"firecaffe: error: {path}:4: layer 'p0': the net's blobs need "), lines[0]
    assert "of memory here; the largest so far: 'data' " in lines[0]
    assert np.isclose(float(lines[0].split("need ")[1].split(" GiB")[0]), 1.2 * memory / 2**30, rtol=0.01)


def test_a_solvers_train_and_test_nets_count_together(tmp_path, monkeypatch):
    """Each net fits alone (1 GiB), the two do not (2 GiB against 1.5): refused while the test net is built,
    at its file and line; the test net's weights, shared with the train net, count once."""
    from firecaffe.solvers.solver import Solver
    monkeypatch.setattr(blob_module, "_memory_bytes", lambda: 1.5 * 2**30)
    net = tmp_path / "net.prototxt"
    net.write_text('layer { name: "data" type: "DummyData" top: "data"\n'
                   '  dummy_data_param { shape { dim: 64 dim: 1024 dim: 1024 } } }\n'
                   'layer { name: "p" type: "Power" bottom: "data" top: "p" }\n'
                   'layer { name: "loss" type: "Reduction" bottom: "p" top: "loss" loss_weight: 1 }\n')
    solver = tmp_path / "solver.prototxt"
    solver.write_text(f'net: "{net}"\nbase_lr: 0.1\nmax_iter: 1\nlr_policy: "fixed"\n')
    assert Solver(str(solver)).net.ledger.total == pytest.approx(2**30, abs=64)      # data and p
    solver.write_text(solver.read_text() + "test_iter: 1\ntest_interval: 1000\n")
    with pytest.raises(ShapeError, match=rf"^{net}:3: layer 'p': the net's blobs need 2 GiB together"):
        Solver(str(solver))


def test_shared_weights_count_once(tmp_path):
    path = tmp_path / "ip.prototxt"
    path.write_text('layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 1000 } } }\n'
                    'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"\n'
                    '  inner_product_param { num_output: 1000 } }\n')
    train = Net(str(path), phase="TRAIN")
    test = Net(str(path), phase="TEST", ledger=train.ledger)
    before = train.ledger.total
    test.share_with(train)
    weights = (1000 * 1000 + 1000) * 4
    assert before - train.ledger.total == weights          # the test net's own weight data is gone
