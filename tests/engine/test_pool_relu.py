"""MAX pooling computing the backward of the in-place ReLU that made its bottom
(engine/fusion.py ``plan_bottom_relu``, ``Pooling.backward_relu``): the mask is read on the
pooled top, so one pass over the smaller blob replaces the ReLU's pass over the larger one.
Every gradient has the layers' value apart (only an exact zero's sign may differ), the
parameter gradients bit for bit; non-finite or huge gradients run the layers apart."""
import numpy as np
import pytest
from google.protobuf import text_format

from firecaffe import Net
from firecaffe.insight.timing import time_net
from firecaffe.ops import dnnl
from firecaffe.proto import caffe_pb2

FILL = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "constant" value: -4 }'
SHAPE = (3, 4, 11, 11)


def net_text(pool="pool: MAX kernel_size: 3 stride: 2", relu="", after="", between="", tops='top: "p"', pooled=""):
    return f"""
force_backward: true
layer {{ name: "in" type: "Input" top: "x" input_param {{ shape {{ {" ".join(f"dim: {d}" for d in SHAPE)} }} }} }}
layer {{ name: "c1" type: "Convolution" bottom: "x" top: "c1"
        convolution_param {{ num_output: 6 kernel_size: 3 pad: 1 {FILL} }} }}
layer {{ name: "r1" type: "ReLU" bottom: "c1" top: "c1" {relu} }}
{between}
layer {{ name: "pool" type: "Pooling" bottom: "c1" {tops} pooling_param {{ {pool} }} }}
{pooled}
layer {{ name: "c2" type: "Convolution" bottom: "p" top: "y"
        convolution_param {{ num_output: 5 kernel_size: 1 {FILL} }} }}
{after}
"""


def twin_nets(text, monkeypatch):
    nets = []
    for fuse in ("1", "0"):
        monkeypatch.setenv("FIRECAFFE_FUSE_RELU", fuse)
        nets.append(Net(text_format.Parse(text, caffe_pb2.NetParameter()), phase="TRAIN"))
    for name in nets[0].params:
        for a, b in zip(nets[0].params[name], nets[1].params[name]):
            b.data[...] = a.data
    return nets


def run(net, dy=None, seed=0, **backward):
    x = np.random.default_rng(seed).standard_normal(SHAPE).astype(np.float32)
    net.forward(x=x)
    net.clear_param_diffs()
    if dy is None:
        dy = np.random.default_rng(seed + 1).standard_normal(net.blobs["y"].shape).astype(np.float32)
    net.blobs["y"].diff[...] = dy
    net.backward(**backward)
    return {name: blob.diff.copy() for name, blob in net.blobs.items()}, \
        [b.diff.copy() for name in net.params for b in net.params[name]]


def same_bits(a, b):
    return a.shape == b.shape and np.array_equal(a.view(np.int32), b.view(np.int32))


def at(net, name):
    return [layer.name for layer in net.layers].index(name)


ENGINES = [pytest.param("", id="oneDNN", marks=pytest.mark.skipif(not dnnl.AVAILABLE, reason="oneDNN not loaded")),
           pytest.param(" engine: CAFFE", id="NumPy")]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("pool", ["pool: MAX kernel_size: 3 stride: 2", "pool: MAX kernel_size: 2 stride: 2",
                                  "pool: MAX kernel_size: 3 stride: 1 pad: 1", "pool: MAX global_pooling: true"])
def test_the_pooling_computes_the_relu_backward(pool, engine, monkeypatch):
    fused, plain = twin_nets(net_text(pool + engine), monkeypatch)
    assert fused.bottom_relu == {at(fused, "pool"): {0: at(fused, "r1")}} and plain.bottom_relu == {}
    (blobs_f, params_f), (blobs_p, params_p) = run(fused), run(plain)
    assert fused.layers[at(fused, "pool")].engine_name == plain.layers[at(plain, "pool")].engine_name
    assert (fused.blobs["c1"].data == 0).any()           # the ReLU masked something...
    if "global" not in pool:
        dead = fused.blobs["p"].data == 0                # ...and whole windows, whose gradient the
        assert (dead & (fused.blobs["p"].diff < 0)).any()   # layers apart turn into -0 (x * 0)
    for name in blobs_f:
        assert np.array_equal(blobs_f[name], blobs_p[name]), name          # values equal (0 == -0)
        differ = np.signbit(blobs_f[name]) != np.signbit(blobs_p[name])
        assert (blobs_f[name][differ] == 0).all(), name                   # only a zero's sign may differ
    assert all(same_bits(a, b) for a, b in zip(params_f, params_p))
    assert np.abs(blobs_f["c1"]).max() > 0
    ran = []
    monkeypatch.setattr(type(fused.layer_dict["r1"]), "backward", lambda self, *a: ran.append(self.name))
    run(fused)
    assert ran == []                                      # the ReLU's backward was the pooling's


@pytest.mark.parametrize("value", [np.nan, np.inf, 3e38])
def test_non_finite_or_huge_gradients_run_the_layers_apart(value, monkeypatch):
    """dy * 0 is NaN for inf, and routed sums of huge values overflow where the layers apart give
    NaN at a masked input: such a backward runs the two layers, bit for bit theirs."""
    fused, plain = twin_nets(net_text(), monkeypatch)
    dy = np.random.default_rng(5).standard_normal(fused.blobs["y"].shape).astype(np.float32)
    dy[1, 2, 3, 4] = value
    dy[0] = 3e38 if value == 3e38 else dy[0]
    with np.errstate(invalid="ignore", over="ignore"):      # the layers apart make NaN (inf * 0)
        (blobs_f, params_f), (blobs_p, params_p) = run(fused, dy), run(plain, dy)
    assert not np.isfinite(blobs_p["c1"]).all()
    for a, b in [*zip(blobs_f.values(), blobs_p.values()), *zip(params_f, params_p)]:
        assert np.array_equal(np.isnan(a), np.isnan(b)) and same_bits(np.nan_to_num(a), np.nan_to_num(b))


@pytest.mark.parametrize("why, text", [pytest.param(why, text, id=why) for why, text in [
    ("average pooling", net_text(pool="pool: AVE kernel_size: 3 stride: 2")),
    ("leaky ReLU", net_text(relu="relu_param { negative_slope: 0.1 }")),
    ("ReLU engine CAFFE", net_text(relu="relu_param { engine: CAFFE }")),
    ("mask top", net_text(tops='top: "p" top: "mask"')),
    ("pooled top rewritten in place", net_text(pooled='layer { name: "r2" type: "ReLU" bottom: "p" top: "p" }')),
    ("ReLU's blob read by another layer", net_text(
        after='layer { name: "p2" type: "Pooling" bottom: "c1" top: "p2" pooling_param { pool: AVE kernel_size: 2 } }')),
    ("ReLU of a BatchNorm chain", net_text(between="", relu="").replace(
        'layer { name: "r1"', 'layer { name: "bn" type: "BatchNorm" bottom: "c1" top: "c1" }\n'
        'layer { name: "sc" type: "Scale" bottom: "c1" top: "c1" scale_param { bias_term: true } }\n'
        'layer { name: "r1"')),
]])
def test_no_fusion_where_it_would_not_hold(why, text, monkeypatch):
    fused, plain = twin_nets(text, monkeypatch)
    assert at(fused, "pool") not in fused.bottom_relu, why
    (blobs_f, params_f), (blobs_p, params_p) = run(fused), run(plain)
    assert all(same_bits(a, b) for a, b in [*zip(blobs_f.values(), blobs_p.values()), *zip(params_f, params_p)]), why


@pytest.mark.parametrize("start, end", [("pool", "pool"), ("c2", "pool"), (None, "pool"), ("pool", "r1")])
def test_a_backward_that_stops_between_them_runs_the_pooling_alone(start, end, monkeypatch):
    fused, plain = twin_nets(net_text(), monkeypatch)
    out = []
    for net in (fused, plain):
        net.forward(x=np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32))
        for blob in net.blobs.values():
            blob.diff[...] = np.random.default_rng(2).standard_normal(blob.shape)
        net.clear_param_diffs()
        net.backward(start=start, end=end)
        out.append({name: blob.diff.copy() for name, blob in net.blobs.items()})
    for name in out[0]:
        if end == "pool":
            assert same_bits(out[0][name], out[1][name]), (start, end, name)
        else:
            assert np.array_equal(out[0][name], out[1][name]), (start, end, name)


def test_a_backward_hook_sees_the_relu_run(monkeypatch):
    fused, plain = twin_nets(net_text(), monkeypatch)
    seen = []
    for net in (fused, plain):
        diffs = []
        net.after_backward(lambda i, net=net, diffs=diffs: diffs.append((i, net.blobs["c1"].diff.copy())))
        run(net)
        seen.append(diffs)
    assert [i for i, _ in seen[0]] == [i for i, _ in seen[1]]
    assert all(same_bits(a, b) for (_, a), (_, b) in zip(*seen))


def test_firecaffe_time_runs_it_fused(monkeypatch):
    fused, plain = twin_nets(net_text(), monkeypatch)
    ran = []
    pooling = type(fused.layer_dict["pool"])
    monkeypatch.setattr(pooling, "backward_relu", lambda self, *a, real=pooling.backward_relu: ran.append(1) or real(self, *a))
    time_net(fused, 1)
    time_net(plain, 1)
    assert ran == [1, 1]          # the warm-up pass and the timed one, on the fused net only


@pytest.mark.parametrize("engine", ENGINES)
def test_routed_sums_that_overflow_run_the_layers_apart(engine, monkeypatch):
    """The one case where masking first would change a value: a NaN the ReLU passes on never wins a
    window, so an input of 0 after it can collect two windows' gradients; their sum overflows and the
    ReLU's backward makes inf * 0 = NaN, where masked gradients would sum to 0. The pooling sees
    gradients that large and leaves the ReLU's backward to the ReLU."""
    text = f"""
force_backward: true
layer {{ name: "in" type: "Input" top: "x" input_param {{ shape {{ dim: 1 dim: 1 dim: 1 dim: 3 }} }} }}
layer {{ name: "r1" type: "ReLU" bottom: "x" top: "x" }}
layer {{ name: "pool" type: "Pooling" bottom: "x" top: "p"
        pooling_param {{ pool: MAX kernel_h: 1 kernel_w: 2 stride: 1 {engine} }} }}
"""
    fused, plain = twin_nets(text, monkeypatch)
    assert fused.bottom_relu == {at(fused, "pool"): {0: at(fused, "r1")}}
    out = []
    for net in (fused, plain):
        net.forward(x=np.array([np.nan, -1, -1], np.float32).reshape(1, 1, 1, 3))
        net.blobs["p"].diff[...] = 3e38
        with np.errstate(over="ignore", invalid="ignore"):
            net.backward()
        out.append(net.blobs["x"].diff.copy())
    if engine:                                  # the NumPy path: Caffe's routing, both to the 0
        assert np.isnan(out[1][0, 0, 0, 1])
    assert np.array_equal(np.isnan(out[0]), np.isnan(out[1]))
    assert same_bits(np.nan_to_num(out[0]), np.nan_to_num(out[1]))
