"""An element-wise sum and the in-place ReLU after it in one pass each way (engine/fusion.py
plan_eltwise, ops/eltwise.py forward_chain/backward_chain): ResNet's residual sum, bit for bit
the two layers' values, gradients included, only where both run in one pass."""
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

from firecaffe import Net
from firecaffe.proto import caffe_pb2, io

FILL = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }'


def residual(branches=2, slope=0.0, coeff="", shape=(2, 4, 5, 6), relu_extra=""):
    dims = " ".join(f"dim: {d}" for d in shape)
    text = f"""force_backward: true
layer {{ name: "in" type: "Input" top: "x" input_param {{ shape {{ {dims} }} }} }}
"""
    for k in range(branches):
        text += f"""layer {{ name: "b{k}" type: "Convolution" bottom: "x" top: "b{k}"
        convolution_param {{ num_output: {shape[1]} kernel_size: 1 engine: CAFFE {FILL} }} }}
"""
    bottoms = " ".join(f'bottom: "b{k}"' for k in range(branches))
    text += f"""layer {{ name: "sum" type: "Eltwise" {bottoms} top: "s" eltwise_param {{ {coeff} }} }}
layer {{ name: "relu" type: "ReLU" bottom: "s" top: "s" relu_param {{ negative_slope: {slope} {relu_extra} }} }}
"""
    return text


def build(text, monkeypatch, fused):
    monkeypatch.setenv("FIRECAFFE_FUSE_RELU", "1" if fused else "0")
    return Net(text_format.Parse(text, caffe_pb2.NetParameter()), phase="TRAIN")


def twins(text, monkeypatch):
    fused, plain = build(text, monkeypatch, True), build(text, monkeypatch, False)
    for name in fused.params:
        for a, b in zip(fused.params[name], plain.params[name]):
            b.data[...] = a.data
    return fused, plain


def step(net, x, seed=1):
    out = net.forward(x=x)
    g = np.random.default_rng(seed).standard_normal(out["s"].shape).astype(np.float32)
    net.clear_param_diffs()
    grads = net.backward(diffs=["x"], s=g)
    return [out["s"].copy(), grads["x"].copy(), net.blobs["s"].diff.copy()] + \
        [b.diff.copy() for name in net.params for b in net.params[name]]


def assert_bits(a, b, what):
    assert len(a) == len(b)
    for k, (x, y) in enumerate(zip(a, b)):
        assert np.array_equal(x.view(np.int32), y.view(np.int32)), f"{what}[{k}]"


@pytest.mark.parametrize("branches, slope", [(2, 0.0), (3, 0.0), (2, 0.25)])
def test_sum_and_relu_equal_the_two_layers(branches, slope, monkeypatch):
    fused, plain = twins(residual(branches, slope), monkeypatch)
    i = [layer.name for layer in fused.layers].index("sum")
    assert fused.eltwise_relu == {i: (i + 1,)} and plain.eltwise_relu == {}
    calls = []
    relu = fused.layers[i + 1]
    for name in ("forward", "backward"):
        monkeypatch.setattr(relu, name, lambda *a, _n=name: calls.append(_n))
    x = np.random.default_rng(0).standard_normal(fused.blobs["x"].data.shape).astype(np.float32)
    assert_bits(step(fused, x), step(plain, x), f"{branches} branches, slope {slope}")
    assert calls == [], "the ReLU ran as a layer of its own"


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_non_finite_values_as_the_two_layers(monkeypatch):
    """NaN and infinities: the fused pass runs the ReLU layer's own pieces (NaN stays NaN)."""
    fused, plain = twins(residual(), monkeypatch)
    x = np.random.default_rng(0).standard_normal(fused.blobs["x"].data.shape).astype(np.float32)
    x[0, 0, 0, :3] = [np.nan, np.inf, -np.inf]
    a, b = step(fused, x), step(plain, x)
    assert np.isnan(a[0]).any()
    assert_bits(a, b, "non-finite")


def test_the_comparison_can_fail(monkeypatch):
    from firecaffe.ops import eltwise
    fused, plain = twins(residual(), monkeypatch)
    monkeypatch.setattr(eltwise, "relu_piece", lambda a, b, slope, same: None)
    x = np.random.default_rng(0).standard_normal(fused.blobs["x"].data.shape).astype(np.float32)
    with pytest.raises(AssertionError):
        assert_bits(step(fused, x), step(plain, x), "broken")


@pytest.mark.parametrize("why, text", [
    ("coefficients other than 1", residual(coeff="coeff: 1 coeff: -1")),
    ("a product", residual(coeff="operation: PROD")),
    ("the ReLU on the CAFFE engine", residual(relu_extra="engine: CAFFE")),
])
def test_not_planned(why, text, monkeypatch):
    assert build(text, monkeypatch, True).eltwise_relu == {}, why


def test_only_where_both_run(monkeypatch):
    """forward(end='sum') leaves the sum without its ReLU, a hook sees the sum: as the two layers."""
    fused, plain = twins(residual(), monkeypatch)
    x = np.random.default_rng(0).standard_normal(fused.blobs["x"].data.shape).astype(np.float32)
    fused.forward(x=x, end="sum"), plain.forward(x=x, end="sum")
    assert (fused.blobs["s"].data < 0).any()
    assert_bits([fused.blobs["s"].data], [plain.blobs["s"].data], "end=sum")


def test_resnet50_plans_its_residual_sums(monkeypatch):
    param = io.read_net(str(Path(__file__).resolve().parents[2] / "nets" / "resnet50" / "deploy.prototxt"))
    monkeypatch.setenv("FIRECAFFE_FUSE_RELU", "1")
    net = Net(param, phase="TEST")
    assert len(net.eltwise_relu) == 16 == sum(layer.type == "Eltwise" for layer in net.layers)
