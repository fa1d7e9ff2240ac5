"""BatchNorm -> Scale (-> ReLU) as one chain (engine/fusion.py plan_norm, ops/batch_norm.py
forward_chain/backward_chain): bit for bit the separate layers' forward, backward, statistics
and parameter gradients, in every variant of the chain, only where all of it runs in one pass."""
import logging

import numpy as np
import pytest
from google.protobuf import text_format

from firecaffe import Net
from firecaffe.engine.testing import logged
from firecaffe.insight.timing import time_net
from firecaffe.ops import dnnl
from firecaffe.proto import caffe_pb2

FILL = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }'


def chain_net(shape=(3, 5, 6, 7), bn_top="c", bn_param="", scale_param="bias_term: true",
              relu="negative_slope: 0", relu_extra="", after=""):
    """Input -> Convolution (so the chain's bottom has a gradient) -> BatchNorm -> Scale -> ReLU,
    in place unless ``bn_top`` differs; ``relu`` None leaves the ReLU out."""
    dims = " ".join(f"dim: {d}" for d in shape)
    text = f"""
force_backward: true
layer {{ name: "in" type: "Input" top: "x" input_param {{ shape {{ {dims} }} }} }}
layer {{ name: "conv" type: "Convolution" bottom: "x" top: "c"
        convolution_param {{ num_output: {shape[1]} kernel_size: 1 engine: CAFFE {FILL} }} }}
layer {{ name: "bn" type: "BatchNorm" bottom: "c" top: "{bn_top}" batch_norm_param {{ {bn_param} }} }}
layer {{ name: "scale" type: "Scale" bottom: "{bn_top}" top: "{bn_top}"
        scale_param {{ {scale_param} filler {{ type: "gaussian" std: 1 }} bias_filler {{ type: "gaussian" std: 1 }} }} }}
"""
    if relu is not None:
        text += f"""layer {{ name: "relu" type: "ReLU" bottom: "{bn_top}" top: "{bn_top}" relu_param {{ {relu} }} {relu_extra} }}
"""
    return text + after


def build(text, monkeypatch, fused=True, phase="TRAIN"):
    monkeypatch.setenv("FIRECAFFE_FUSE_NORM", "1" if fused else "0")
    return Net(text_format.Parse(text, caffe_pb2.NetParameter()), phase=phase)


def twin_nets(text, monkeypatch, phase="TRAIN"):
    """The net with its chains, and without, whose BatchNorm keeps to NumPy's gradient pass too:
    the reference of everything oneDNN computes in the chain."""
    fused, plain = build(text, monkeypatch, True, phase), build(text, monkeypatch, False, phase)
    for layer in plain.layers:
        layer._dnnl_bn_gradient_refused = True
    for name in fused.params:
        for a, b in zip(fused.params[name], plain.params[name]):
            b.data[...] = a.data
    return fused, plain


def step(net, x, seed=1, start=None, end=None):
    """Outputs, the input gradient and every parameter blob (data and diff) after one forward and
    a backward from a fixed random output gradient."""
    out = net.forward(x=x, start=start, end=end)
    rng = np.random.default_rng(seed)
    diffs = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in out.items()}
    net.clear_param_diffs()
    grads = net.backward(diffs=["x"], **diffs)
    blobs = [a for name in net.params for b in net.params[name] for a in (b.data.copy(), b.diff.copy())]
    return [v.copy() for v in out.values()] + [grads["x"].copy()] + blobs


def assert_bits(a, b, what):
    assert len(a) == len(b)
    for k, (x, y) in enumerate(zip(a, b)):
        assert x.dtype == y.dtype and x.shape == y.shape, what
        assert np.array_equal(x.view(np.int32), y.view(np.int32)), \
            f"{what}[{k}]: max |diff| {np.nanmax(np.abs(x - y))}"


def data(shape, seed=0, scale=3.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale + 1).astype(np.float32)


VARIANTS = {
    "bn-scale-relu in place": {},
    "leaky relu": {"relu": "negative_slope: 0.1"},
    "no relu": {"relu": None},
    "scale without bias": {"scale_param": "bias_term: false"},
    "global statistics": {"bn_param": "use_global_stats: true"},
    "bn not in place": {"bn_top": "n"},
    "late-layer shape (7x7, many channels)": {"shape": (4, 40, 7, 7)},
    "2-d bottom": {"shape": (6, 5)},
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_chain_equals_the_separate_layers(name, monkeypatch):
    kwargs = dict(VARIANTS[name])
    text = chain_net(**kwargs)
    if "shape" in kwargs and len(kwargs["shape"]) == 2:
        text = text.replace("Convolution", "InnerProduct").replace("convolution_param", "inner_product_param") \
            .replace(" kernel_size: 1 engine: CAFFE", "")
    fused, plain = twin_nets(text, monkeypatch)
    assert list(fused.norm_chain) == [2] and plain.norm_chain == {}
    assert fused.norm_chain[2] == ((3,) if kwargs.get("relu", "") is None else (3, 4))
    shape = fused.blobs["x"].data.shape
    for it in range(3):                       # running statistics move: each step sees the last's
        x = data(shape, seed=it)
        assert_bits(step(fused, x, seed=it), step(plain, x, seed=it), f"{name}, step {it}")
        assert fused.layers[2].ran_blocked and fused.layers[3].ran_blocked, "the chain did not run"
        assert fused.layers[2].chain_engine.startswith("NumPy statistics, oneDNN" if dnnl.AVAILABLE else "NumPy, b")
        gradient = getattr(fused.layers[2], "_dnnl_bn_gradient", None)
        assert (gradient is not None) == (dnnl.AVAILABLE and "global" not in name)


@pytest.mark.skipif(not dnnl.AVAILABLE, reason=f"oneDNN not loaded: {dnnl.REASON}")
@pytest.mark.parametrize("n, c, inner", [(1, 1, 1), (6, 5, 1), (16, 64, 1), (2, 3, 2), (3, 17, 7), (2, 16, 49),
                                         (1, 64, 50), (4, 8, 3136)])
@pytest.mark.parametrize("bias, slope", [(True, 0.0), (False, 0.1), (True, None)])
def test_onednn_forward_equals_numpy(n, c, inner, bias, slope):
    """oneDNN's two binary primitives give the NumPy passes' x_norm and y bit for bit in every
    shape (with inner 1 too, where oneDNN 3.2 broadcast a (1, c, 1) post-op operand wrongly)."""
    from firecaffe.ops.dnnl.chain import ChainForward
    rng = np.random.default_rng(n * 100 + c + inner)
    x = rng.standard_normal((n, c, inner)).astype(np.float32) * 3
    mean, std, s, b = (rng.standard_normal(c).astype(np.float32) for _ in range(4))
    std = np.abs(std) + np.float32(0.1)
    xn, y = np.empty_like(x), np.empty_like(x)
    ChainForward(x.shape, bias, slope)(x, xn, y, mean, std, s, b)
    ref = (x - mean[:, None]) / std[:, None]
    out = ref * s[:, None]
    if bias:
        out += b[:, None]
    if slope is not None:
        out = np.where(out > 0, out, out * np.float32(slope))
        out += np.float32(0)              # slope 0: +0 for the negatives, as the ReLU layer
    assert_bits([xn, y], [ref, out], f"{(n, c, inner)}")


@pytest.mark.parametrize("what", ["NaN in x, global statistics", "huge scale, batch statistics"])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_outputs_that_could_be_non_finite_take_the_numpy_passes(what, monkeypatch):
    """oneDNN's ReLU of slope 0 turns NaN into 0 (Caffe's keeps it): where the chain cannot show
    its outputs finite from the per-channel values, the NumPy passes run, and the values are the
    separate layers' (NaN included)."""
    glob = what.startswith("NaN")
    fused, plain = twin_nets(chain_net(bn_param="use_global_stats: true" if glob else ""), monkeypatch)
    x = data(fused.blobs["x"].data.shape)
    if glob:
        for net in (fused, plain):
            net.params["conv"][0].data[0, 0] = np.nan
    else:
        for net in (fused, plain):
            net.params["scale"][0].data[1] = 1e37
    a, b = step(fused, x), step(plain, x)
    assert_bits(a, b, what)
    assert fused.layers[2].chain_engine == "NumPy, blocked"
    if glob:
        assert np.isnan(a[0]).any()


def test_chain_runs_fused_and_the_separate_path_is_not_fused(monkeypatch):
    """Guard against a test of two unfused nets: the separate path's ReLU must have run in the
    plain net, and the fused net's layers must not have run their own forward."""
    fused, plain = twin_nets(chain_net(), monkeypatch)
    calls = []
    for layer in fused.layers[2:]:
        monkeypatch.setattr(layer, "forward", lambda *a, _n=layer.name: calls.append(_n))
        monkeypatch.setattr(layer, "backward", lambda *a, _n=layer.name: calls.append(_n))
    x = data(fused.blobs["x"].data.shape)
    fused.forward(x=x)
    fused.backward()
    assert calls == []


def test_values_differ_from_a_broken_chain(monkeypatch):
    """The comparison can fail: a chain that forgets the ReLU's gradient differs."""
    from firecaffe.ops import batch_norm
    fused, plain = twin_nets(chain_net(), monkeypatch)
    monkeypatch.setattr(batch_norm, "relu_grad", lambda a, g, out, slope, same: None)
    x = data(fused.blobs["x"].data.shape)
    with pytest.raises(AssertionError):
        assert_bits(step(fused, x), step(plain, x), "broken")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_non_finite_values_as_the_separate_layers(monkeypatch):
    """NaN and infinities go through the chain as through Caffe's layers (the ReLU's -inf -> NaN)."""
    fused, plain = twin_nets(chain_net(bn_param="use_global_stats: true"), monkeypatch)
    for net in (fused, plain):
        net.params["scale"][0].data[:2] = [np.inf, -np.inf]
    x = data(fused.blobs["x"].data.shape)
    a, b = step(fused, x), step(plain, x)
    assert np.isnan(a[0]).any()
    assert_bits(a, b, "non-finite")


def test_chain_only_where_all_of_it_runs(monkeypatch):
    """forward(end='scale') leaves the ReLU undone; forward(start='scale') scales what the blob
    holds; a hook sees each layer's own output: all as the separate layers."""
    text = chain_net()
    fused, plain = twin_nets(text, monkeypatch)
    x = data(fused.blobs["x"].data.shape)
    for kw in ({"end": "scale"}, {"end": "bn"}):
        fused.forward(x=x, **kw), plain.forward(x=x, **kw)
        assert_bits([fused.blobs["c"].data], [plain.blobs["c"].data], str(kw))
    fused.forward(x=x, start="scale"), plain.forward(x=x, start="scale")
    assert_bits([fused.blobs["c"].data], [plain.blobs["c"].data], "start=scale")
    seen = {}
    fused.after_forward(lambda i: seen.setdefault(i, fused.blobs["c"].data.copy()))
    plain.after_forward(lambda i: seen.setdefault(-i, plain.blobs["c"].data.copy()))
    fused.forward(x=x), plain.forward(x=x)
    for i in (2, 3, 4):
        assert_bits([seen[i]], [seen[-i]], f"hooked layer {i}")


def test_backward_without_the_chain_after_a_fused_forward(monkeypatch):
    """A fused forward leaves what the separate backward passes read (and the other way round)."""
    fused, plain = twin_nets(chain_net(), monkeypatch)
    x = data(fused.blobs["x"].data.shape)
    out = fused.forward(x=x)
    plain.forward(x=x)
    fused.after_backward(lambda i: None)          # a hook: backward runs layer by layer
    g = np.random.default_rng(3).standard_normal(out["c"].shape).astype(np.float32)
    fused.clear_param_diffs(), plain.clear_param_diffs()
    assert_bits([fused.backward(diffs=["x"], c=g)["x"]], [plain.backward(diffs=["x"], c=g)["x"]], "unfused backward")
    fused2, plain2 = twin_nets(chain_net(), monkeypatch)
    fused2.before_forward(lambda i: None)         # separate forward, fused backward
    fused2.forward(x=x), plain2.forward(x=x)
    fused2.clear_param_diffs(), plain2.clear_param_diffs()
    assert_bits([fused2.backward(diffs=["x"], c=g)["x"]], [plain2.backward(diffs=["x"], c=g)["x"]], "fused backward")
    assert_bits([fused2.params["scale"][0].diff], [plain2.params["scale"][0].diff], "scale gradient")


TWO_BOTTOM_SCALE = """
layer { name: "in" type: "Input" top: "x" top: "w" input_param { shape { dim: 2 dim: 5 dim: 3 dim: 3 } shape { dim: 5 } } }
layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" }
layer { name: "scale" type: "Scale" bottom: "x" bottom: "w" top: "x" }
layer { name: "relu" type: "ReLU" bottom: "x" top: "x" }
"""


@pytest.mark.parametrize("why, text", [
    ("Scale not in place", chain_net().replace('bottom: "c" top: "c"\n        scale_param', 'bottom: "c" top: "s"\n        scale_param')
     .replace('bottom: "c" top: "c" relu_param', 'bottom: "s" top: "s" relu_param')),
    ("Scale of two bottoms", TWO_BOTTOM_SCALE),
    ("a ReLU between BatchNorm and Scale", TWO_BOTTOM_SCALE.replace('bottom: "w" ', '').replace(
        'top: "x" top: "w"', 'top: "x"').replace(' shape { dim: 5 } }', ' }').replace(
        'layer { name: "scale"', 'layer { name: "r0" type: "ReLU" bottom: "x" top: "x" }\nlayer { name: "scale"')),
])
def test_not_planned(why, text, monkeypatch):
    net = build(text, monkeypatch)
    assert 2 not in net.norm_chain and 3 not in net.norm_chain, why


def test_relu_engine_caffe_leaves_the_relu_out(monkeypatch):
    net = build(chain_net(relu="negative_slope: 0 engine: CAFFE"), monkeypatch)
    assert net.norm_chain == {2: (3,)}


def test_chain_output_read_by_two_layers(monkeypatch):
    """ResNet's pattern: the chain's output feeds a branch and the residual sum (a Split after it)."""
    text = chain_net(after="""
layer { name: "o1" type: "Sigmoid" bottom: "c" top: "o1" }
layer { name: "o2" type: "Eltwise" bottom: "c" bottom: "o1" top: "o2" }""")
    fused, plain = twin_nets(text, monkeypatch)
    assert fused.norm_chain == {2: (3, 4)} and fused.layers[5].type == "Split"
    x = data(fused.blobs["x"].data.shape)
    assert_bits(step(fused, x), step(plain, x), "split")


def test_time_names_the_chain_and_matches(monkeypatch):
    """`firecaffe time` runs the chain (its time in the BatchNorm's and the ReLU's rows) and says
    which layers it computes."""
    fused = build(chain_net(), monkeypatch)
    with logged(logging.INFO) as messages:
        times = time_net(fused, 2)
    text = "\n".join(messages)
    assert "scale\tengine: fused into bn" in text and "relu\tengine: fused into bn" in text, text
    assert set(times) == {layer.name for layer in fused.layers}
    assert ("bn\tengine: NumPy statistics, oneDNN element-wise (jit" if dnnl.AVAILABLE else
            "bn\tengine: NumPy, blocked") in text, text


def test_resnet50_plans_every_chain(monkeypatch):
    """nets/resnet50: every BatchNorm is followed by its Scale in place (53 chains), and 33 of
    them by a ReLU (the other 16 ReLUs follow the residual sums, 4 chains end at a Split)."""
    from pathlib import Path
    from firecaffe.proto import io
    param = io.read_net(str(Path(__file__).resolve().parents[2] / "nets" / "resnet50" / "deploy.prototxt"))
    monkeypatch.setenv("FIRECAFFE_FUSE_NORM", "1")
    net = Net(param, phase="TEST")
    chains = net.norm_chain
    assert len(chains) == 53 == sum(layer.type == "BatchNorm" for layer in net.layers)
    assert sum(len(c) == 2 for c in chains.values()) == 33
    assert all(net.layers[c[-1]].type == "ReLU" for c in chains.values() if len(c) == 2)


@pytest.mark.skipif(not dnnl.AVAILABLE, reason=f"oneDNN not loaded: {dnnl.REASON}")
@pytest.mark.parametrize("n, c, inner", [(1, 1, 1), (6, 5, 1), (2, 3, 2), (3, 17, 7), (2, 16, 49), (4, 8, 3136)])
@pytest.mark.parametrize("in_place", [True, False])
def test_onednn_gradient_equals_numpy(n, c, inner, in_place):
    """BatchNorm's batch-statistics gradient on oneDNN (BatchNormGradient) is the NumPy pass's
    (dy - (x_norm * mean_dyy + mean_dy)) / std bit for bit, +0 where dy equals t included."""
    from firecaffe.ops.dnnl.chain import BatchNormGradient
    rng = np.random.default_rng(n * 100 + c + inner)
    xn = rng.standard_normal((n, c, inner)).astype(np.float32)
    dy = rng.standard_normal((n, c, inner)).astype(np.float32)
    mean_dy, mean_dyy = (rng.standard_normal((c, 1)).astype(np.float32) for _ in range(2))
    std = np.abs(rng.standard_normal((c, 1))).astype(np.float32) + np.float32(0.1)
    dy.reshape(-1)[::5] = (xn * mean_dyy + mean_dy).reshape(-1)[::5]        # dy - t = 0 there
    t = xn * mean_dyy + mean_dy
    ref = (dy - t) / std
    dx = dy if in_place else np.empty_like(dy)
    BatchNormGradient(dy.shape)(dy, dx, xn, mean_dy, mean_dyy, std)
    assert_bits([dx], [ref], f"{(n, c, inner)}")
    assert not np.signbit(dx.reshape(-1)[::5]).any()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_non_finite_gradient_takes_the_numpy_pass(monkeypatch):
    """A NaN or infinity in the top diff makes the sums non-finite: the gradient then comes from
    the NumPy pass (oneDNN's negations would flip a NaN's sign), and equals it bit for bit."""
    from firecaffe.ops import batch_norm
    fused, plain = twin_nets(chain_net(), monkeypatch)
    x = data(fused.blobs["x"].data.shape)
    for net in (fused, plain):
        net.forward(x=x)
    g = np.random.default_rng(5).standard_normal(fused.blobs["c"].data.shape).astype(np.float32)
    g[0, 1, 2, 3], g[1, 2, 0, 0] = np.nan, np.inf
    calls = []
    real = batch_norm.batch_norm_gradient
    monkeypatch.setattr(batch_norm, "batch_norm_gradient", lambda *a: calls.append(a) or real(*a))
    fused.clear_param_diffs(), plain.clear_param_diffs()
    a, b = fused.backward(diffs=["x"], c=g)["x"], plain.backward(diffs=["x"], c=g)["x"]
    assert calls and np.isnan(a).any()
    assert_bits([a], [b], "NaN in the top diff")


RESIDUAL = """
force_backward: true
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 4 dim: 6 dim: 6 } } }
layer { name: "c1" type: "Convolution" bottom: "x" top: "c1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 engine: CAFFE %(fill)s } }
layer { name: "bn1" type: "BatchNorm" bottom: "c1" top: "c1" }
layer { name: "s1" type: "Scale" bottom: "c1" top: "c1" scale_param { bias_term: true } }
layer { name: "r1" type: "ReLU" bottom: "c1" top: "c1" }
layer { name: "c2" type: "Convolution" bottom: "c1" top: "c2"
        convolution_param { num_output: 4 kernel_size: 1 engine: CAFFE %(fill)s } }
layer { name: "bn2" type: "BatchNorm" bottom: "c2" top: "c2" }
layer { name: "s2" type: "Scale" bottom: "c2" top: "c2" scale_param { bias_term: true } }
layer { name: "sum" type: "Eltwise" bottom: "x" bottom: "c2" top: "y" }
layer { name: "r2" type: "ReLU" bottom: "y" top: "y" }
layer { name: "ip" type: "InnerProduct" bottom: "y" top: "ip" inner_product_param { num_output: 3 %(fill)s } }
""" % {"fill": FILL}


def test_gradients_reported_ready_are_final(monkeypatch):
    """The bucketed reduction sends the diff arena's first n values when backward says they are
    done (grad_ready): with chains computing several layers at their last layer's index, every
    value reported must already hold its final gradient."""
    net = build(RESIDUAL, monkeypatch)
    assert len(net.norm_chain) == 2 and len(net.eltwise_relu) == 1
    net.forward(x=data(net.blobs["x"].data.shape))
    net.clear_param_diffs()
    net.blobs["ip"].diff[...] = 1.0
    seen = []
    net.backward_range(grad_ready=lambda n: seen.append(net.diff_arena[:n].copy()))
    final = net.diff_arena
    assert seen and seen[-1].size == final.size
    for prefix in seen:
        assert np.array_equal(prefix, final[:prefix.size])


def test_float64_nets_run_the_chain_on_numpy(monkeypatch):
    """A float64 net (oneDNN is float32 only): the chain's NumPy passes, bit for bit the layers."""
    nets = []
    for fused in (True, False):
        monkeypatch.setenv("FIRECAFFE_FUSE_NORM", "1" if fused else "0")
        nets.append(Net(text_format.Parse(chain_net(), caffe_pb2.NetParameter()), phase="TRAIN", dtype=np.float64))
    for name in nets[0].params:
        for a, b in zip(nets[0].params[name], nets[1].params[name]):
            b.data[...] = a.data
    x = data(nets[0].blobs["x"].data.shape).astype(np.float64)
    a, b = step(nets[0], x), step(nets[1], x)
    for k, (u, v) in enumerate(zip(a, b)):
        assert u.dtype == np.float64 and np.array_equal(u.view(np.int64), v.view(np.int64)), k
    assert nets[0].layers[2].chain_engine == "NumPy, blocked"
