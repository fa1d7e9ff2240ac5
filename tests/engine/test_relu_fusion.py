"""ReLU fused into the Convolution before it as oneDNN's post-op (firecaffe/engine/fusion.py):
bit for bit the unfused net's forward and backward, only where both layers run in one pass,
never where Caffe's semantics could tell the difference."""
import logging

import numpy as np
import pytest
from google.protobuf import text_format

from firecaffe import Net
from firecaffe.engine.testing import logged
from firecaffe.insight.timing import time_net
from firecaffe.ops import dnnl
from firecaffe.proto import caffe_pb2, io

pytestmark = pytest.mark.skipif(not dnnl.AVAILABLE, reason=f"oneDNN not loaded: {dnnl.REASON}")

FILL = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }'


def conv_relu(conv, shape, slope=0.0, relu_extra="", conv_extra="", relu_top="c"):
    dims = " ".join(f"dim: {d}" for d in shape)
    return f"""
force_backward: true
layer {{ name: "in" type: "Input" top: "x" input_param {{ shape {{ {dims} }} }} }}
layer {{ name: "conv1" type: "Convolution" bottom: "x" top: "c"
        convolution_param {{ {conv} {FILL} {conv_extra} }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "c" top: "{relu_top}" relu_param {{ negative_slope: {slope} {relu_extra} }} }}
"""


def build(text_or_param, monkeypatch, fused=True, phase="TRAIN"):
    monkeypatch.setenv("FIRECAFFE_FUSE_RELU", "1" if fused else "0")
    param = text_or_param if isinstance(text_or_param, caffe_pb2.NetParameter) else \
        text_format.Parse(text_or_param, caffe_pb2.NetParameter())
    return Net(param, phase=phase)


def twin_nets(text, monkeypatch, phase="TRAIN"):
    fused, plain = build(text, monkeypatch, True, phase), build(text, monkeypatch, False, phase)
    for name in fused.params:
        for a, b in zip(fused.params[name], plain.params[name]):
            b.data[...] = a.data
    return fused, plain


def forward_backward(net, inputs, seed=1):
    """Outputs, then input and parameter gradients for a fixed random output gradient."""
    out = net.forward(**inputs)
    rng = np.random.default_rng(seed)
    diffs = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in out.items()}
    net.clear_param_diffs()
    grads = net.backward(diffs=list(inputs), **diffs)
    params = [b.diff.copy() for name in net.params for b in net.params[name]]
    return [v.copy() for v in out.values()], [grads[k].copy() for k in inputs], params


def assert_bits(a, b, what):
    for k, (x, y) in enumerate(zip(a, b)):
        assert x.dtype == y.dtype and x.shape == y.shape, what
        assert np.array_equal(x.view(np.int32), y.view(np.int32)), f"{what}[{k}]: max |diff| {np.abs(x - y).max()}"


CASES = [   # (convolution_param, input shape): direct (jit) kernels, fused
    ("num_output: 16 kernel_size: 3 pad: 1", (2, 8, 9, 9)),
    ("num_output: 16 kernel_size: 3 pad: 1 stride: 2", (2, 16, 7, 6)),
    ("num_output: 32 kernel_size: 3 group: 2 stride: 2", (3, 32, 10, 10)),
    ("num_output: 16 kernel_size: 3 group: 16 pad: 1", (2, 16, 6, 6)),                # depthwise
    ("num_output: 16 kernel_size: 3 bias_term: false", (2, 16, 6, 6)),
    ("num_output: 32 kernel_size: 5 pad: 2 stride: 2 group: 2", (1, 32, 11, 11)),
    ("num_output: 16 kernel_size: 3 dilation: 2 pad: 2", (2, 16, 8, 8)),
    ("num_output: 16 kernel_size: 3", (1, 3, 5, 5)),
]
GEMM_CASES = [   # oneDNN's gemm convolutions: the fused kernel is slow, not fused
    ("num_output: 32 kernel_size: 1", (2, 16, 7, 7)),
    ("num_output: 8 kernel_size: 3 group: 4 stride: 2", (3, 8, 10, 10)),
]


def conv_layer_geometry(layer):
    from firecaffe.ops.dnnl.conv import geometry
    return geometry(layer.num, layer.channels, layer.num_output, layer.group, layer.in_spatial,
                    layer.out_spatial, layer.kernel, layer.stride, layer.pad, layer.dilation)


@pytest.mark.parametrize("slope", [0.0, 0.1])
@pytest.mark.parametrize("conv, shape", CASES + GEMM_CASES)
def test_fused_forward_and_backward_equal_unfused_bit_for_bit(conv, shape, slope, monkeypatch):
    fused, plain = twin_nets(conv_relu(conv, shape, slope), monkeypatch)
    slope = float(np.float32(slope))          # relu_param's float
    layer = fused.layers[1]
    assert layer.use_dnnl and plain.relu_fusion == {}
    pays = layer.relu_fusable(slope)
    assert fused.relu_fusion == ({1: slope} if pays else {})
    geo = conv_layer_geometry(layer)
    assert pays == ("gemm" not in geo.fwd_pd(layer.bias_term, slope).impl())
    if (conv, shape) in CASES and not pays:
        pytest.skip(f"no direct oneDNN kernel for this shape on this CPU ({geo.fwd_pd(layer.bias_term, slope).impl()})")
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    a, b = forward_backward(fused, {"x": x}), forward_backward(plain, {"x": x})
    for what, mine, theirs in zip(("outputs", "input gradient", "parameter gradients"), a, b):
        assert_bits(mine, theirs, what)
    assert (a[0][0] < 0).any() == (slope > 0) and ((a[0][0] == 0).any() or slope > 0)   # the ReLU acted
    assert (("fwd", layer.bias_term, slope) in geo._prims) == pays       # the pass really fused


@pytest.mark.parametrize("slope", [0.0, 0.1, 2.5])
@pytest.mark.parametrize("conv, shape", CASES + GEMM_CASES)
def test_the_post_op_is_caffes_relu_on_every_kernel(conv, shape, slope, monkeypatch):
    """The fused primitive itself, direct and gemm kernels alike: bit for bit the convolution
    then the ReLU layer, +0 (not -0) for negatives with slope 0."""
    from firecaffe.engine.testing import make_layer
    from firecaffe.ops.dnnl.api import ARG_BIAS, ARG_DST, ARG_SRC, ARG_WEIGHTS
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    conv_l, bottom, top = make_layer(f'type: "Convolution" convolution_param {{ {conv} {FILL} }}', [x],
                                     dtype=np.float32)
    relu, _, _ = make_layer(f'type: "ReLU" relu_param {{ negative_slope: {slope} }}', [top[0].data],
                            dtype=np.float32)
    conv_l.forward(bottom, top)
    expect = top[0].data.copy()
    relu.forward(top, top)
    assert (expect < 0).any()
    geo = conv_layer_geometry(conv_l)
    got = np.empty_like(expect)
    args = {ARG_SRC: x, ARG_WEIGHTS: conv_l.blobs[0].data, ARG_DST: got}
    if conv_l.bias_term:
        args[ARG_BIAS] = conv_l.blobs[1].data
    geo.forward(conv_l.bias_term, float(np.float32(slope)))(args)
    assert_bits([got], [top[0].data], geo.fwd_pd(conv_l.bias_term, float(np.float32(slope))).impl())


def test_forward_start_and_end_keep_caffe_semantics(monkeypatch):
    fused, plain = twin_nets(conv_relu("num_output: 16 kernel_size: 3 pad: 1", (2, 4, 6, 6)), monkeypatch)
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 6)).astype(np.float32)
    fused.blobs["x"].data[...] = x
    plain.blobs["x"].data[...] = x
    upto = fused.forward(end="conv1")["c"].copy()          # conv1 alone: no ReLU
    assert (upto < 0).any()
    assert_bits([upto], [plain.forward(end="conv1")["c"]], "forward(end='conv1')")
    mine = np.random.default_rng(2).standard_normal(upto.shape).astype(np.float32)
    fused.blobs["c"].data[...] = mine                      # relu1 alone: on what the user put there
    assert_bits([fused.forward(start="relu1")["c"]], [np.maximum(mine, 0)], "forward(start='relu1')")
    both = fused.forward()["c"]
    assert_bits([both], [np.maximum(upto, 0)], "forward()")


def test_a_reshaped_net_still_fuses_exactly(monkeypatch):
    fused, plain = twin_nets(conv_relu("num_output: 16 kernel_size: 3 pad: 1", (2, 4, 6, 6)), monkeypatch)
    x = np.random.default_rng(5).standard_normal((5, 4, 9, 7)).astype(np.float32)
    for net in (fused, plain):
        net.blobs["x"].reshape(*x.shape)
        net.reshape()
    a, b = forward_backward(fused, {"x": x}), forward_backward(plain, {"x": x})
    for what, mine, theirs in zip(("outputs", "input gradient", "parameter gradients"), a, b):
        assert_bits(mine, theirs, what)
    assert ("fwd", True, 0.0) in conv_layer_geometry(fused.layers[1])._prims


def test_a_forward_hook_sees_the_convolution_before_the_relu(monkeypatch):
    fused, _ = twin_nets(conv_relu("num_output: 16 kernel_size: 3 pad: 1", (2, 4, 6, 6)), monkeypatch)
    fused.blobs["x"].data[...] = np.random.default_rng(0).standard_normal((2, 4, 6, 6))
    seen = {}
    fused.after_forward(lambda i: seen.setdefault(i, fused.blobs["c"].data.copy()))
    fused.forward()
    assert (seen[1] < 0).any() and not (seen[2] < 0).any()


@pytest.mark.parametrize("why, text", [
    ("relu engine CAFFE", conv_relu("num_output: 16 kernel_size: 3", (1, 3, 5, 5), relu_extra="engine: CAFFE")),
    ("conv engine CAFFE", conv_relu("num_output: 16 kernel_size: 3", (1, 3, 5, 5), conv_extra="engine: CAFFE")),
    ("not in place", conv_relu("num_output: 16 kernel_size: 3", (1, 3, 5, 5), relu_top="r")),
    ("split: relu reads a copy", conv_relu("num_output: 16 kernel_size: 3", (1, 3, 5, 5), relu_top="r")
     + 'layer { name: "other" type: "Power" bottom: "c" top: "p" }'),
    ("loss weight on the relu", conv_relu("num_output: 16 kernel_size: 3", (1, 3, 5, 5)).replace(
        'bottom: "c" top: "c"', 'bottom: "c" top: "c" loss_weight: 1')),
])
def test_no_fusion_where_caffe_could_tell(why, text, monkeypatch):
    net = build(text, monkeypatch)
    assert net.relu_fusion == {}, why
    net.blobs["x"].data[...] = np.random.default_rng(0).standard_normal(net.blobs["x"].shape)
    net.forward()
    pre = net.blobs["c"].data
    if why in ("not in place", "split: relu reads a copy"):
        assert (pre < 0).any(), why           # the convolution's own top stays un-ReLU'd


def test_a_layer_after_the_relu_reads_the_relu_output_as_in_caffe(monkeypatch):
    text = conv_relu("num_output: 16 kernel_size: 3", (1, 3, 5, 5)) \
        + 'layer { name: "other" type: "Power" bottom: "c" top: "p" }'
    fused, plain = twin_nets(text, monkeypatch)
    assert fused.relu_fusion == {1: 0.0}
    x = np.random.default_rng(0).standard_normal((1, 3, 5, 5)).astype(np.float32)
    assert_bits([fused.forward(x=x)["p"]], [plain.forward(x=x)["p"]], "after the ReLU")


def test_the_switch_turns_fusion_off(monkeypatch):
    text = conv_relu("num_output: 16 kernel_size: 3", (1, 3, 5, 5))
    assert build(text, monkeypatch, fused=True).relu_fusion == {1: 0.0}
    assert build(text, monkeypatch, fused=False).relu_fusion == {}
    monkeypatch.delenv("FIRECAFFE_FUSE_RELU")              # on by default
    assert Net(text_format.Parse(text, caffe_pb2.NetParameter()), phase="TRAIN").relu_fusion == {1: 0.0}


def poison(kind, x, weights):
    """Make the convolution's output non-finite one way or another (``weights``: each net's own)."""
    if kind == "nan input":
        x[0, 1, 2, 3] = np.nan
    elif kind == "inf input":
        x[0, 0, 1, 1] = np.inf
    elif kind == "-inf input":
        x[0, 2, 4, 4] = -np.inf
    elif kind == "overflowing sums":      # finite everywhere, but sums pass float32's largest value
        x[0, :, 2:5, 2:5] = 3e38 * np.sign(x[0, :, 2:5, 2:5])
    elif kind == "large but safe":        # no overflow possible: still fused
        x *= 1e15
    for w in weights:
        if kind == "nan weight":
            w[3, 1, 1, 1] = np.nan
        elif kind == "large but safe":
            w *= 1e15


@pytest.mark.parametrize("kind", ["nan input", "inf input", "-inf input", "nan weight", "overflowing sums",
                                  "large but safe"])
def test_non_finite_outputs_run_unfused_as_caffe(kind, monkeypatch):
    """Fused, a NaN out of the convolution would become 0 where Caffe's ReLU passes it on: where the
    inputs or weights could make one, that forward runs the two layers apart, so the net's outputs
    (NaN included) are the unfused net's, bit for bit."""
    from firecaffe.ops import conv as conv_module
    checked = []
    monkeypatch.setattr(conv_module, "_sums_bounded",
                        lambda *a, real=conv_module._sums_bounded: checked.append(real(*a)) or checked[-1])
    conv, shape = CASES[0]
    fused, plain = twin_nets(conv_relu(conv, shape), monkeypatch)
    layer = fused.layers[1]
    if not layer.relu_fusable(0.0):
        pytest.skip("no direct oneDNN kernel for this shape on this CPU")
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    poison(kind, x, [fused.params["conv1"][0].data, plain.params["conv1"][0].data])
    mine, theirs = fused.forward(x=x)["c"].copy(), plain.forward(x=x)["c"].copy()
    assert checked == [kind == "large but safe"]            # fused once, or run apart
    if kind == "large but safe":
        assert np.isfinite(theirs).all() and (theirs > 1e29).any()
    else:
        assert not np.isfinite(theirs).all()          # the case really makes a NaN or inf
    assert np.array_equal(np.isnan(mine), np.isnan(theirs)), kind
    assert_bits([np.nan_to_num(mine)], [np.nan_to_num(theirs)], kind)


def deploy_with_gradients(path, batch, size=None):
    param = io.read_net(path)
    param.force_backward = True
    for layer in param.layer:
        if layer.type == "Input" and size:
            dims = layer.input_param.shape[0].dim
            dims[0], dims[2:] = batch, [size, size]
    return param


def direct_kernel_convolutions(net):
    return {i for i, layer in enumerate(net.layers) if layer.type == "Convolution"
            and layer.relu_fusable(0.0) and net.layers[i + 1].type == "ReLU"}


@pytest.mark.parametrize("path, batch, size, phase", [
    ("nets/squeezenet_v1.1/deploy.prototxt", 2, 99, "TEST"),
    ("nets/lenet_digits/train_test.prototxt", None, None, "TEST"),
])
def test_whole_nets_equal_fused_and_unfused(path, batch, size, phase, monkeypatch):
    param = deploy_with_gradients(path, batch, size)
    if "lenet" in path:    # its data layer reads nets/lenet_digits; the same batch on both nets
        fused, plain = twin_nets(param, monkeypatch, phase)
        assert set(fused.relu_fusion) == direct_kernel_convolutions(fused)   # AVX-512: conv1 and conv2
        fused.forward()
        plain.forward()
        for name in ("data", "label"):
            assert np.array_equal(fused.blobs[name].data, plain.blobs[name].data)
        inputs = {"data": fused.blobs["data"].data.copy()}
        # rerun from the first layer after the data layer on the same batch
        start = next(layer.name for layer in fused.layers if layer.type == "Convolution")
        outs = []
        for net in (fused, plain):
            net.blobs["data"].data[...] = inputs["data"]
            net.forward(start=start)
            net.clear_param_diffs()
            net.backward()
            outs.append([net.blobs[k].data.copy() for k in net.outputs]
                        + [b.diff.copy() for n in net.params for b in net.params[n]])
        assert_bits(outs[0], outs[1], "lenet")
        return
    fused, plain = twin_nets(param, monkeypatch, phase)
    # the convolutions with a direct fused kernel: 9 of 26 on AVX-512 (conv1, the 3x3 expands)
    assert set(fused.relu_fusion) == direct_kernel_convolutions(fused) and fused.relu_fusion
    x = np.random.default_rng(0).standard_normal(fused.blobs["data"].shape).astype(np.float32)
    a, b = forward_backward(fused, {"data": x}), forward_backward(plain, {"data": x})
    for what, mine, theirs in zip(("outputs", "input gradient", "parameter gradients"), a, b):
        assert_bits(mine, theirs, what)


def test_firecaffe_time_names_the_fusion(monkeypatch):
    net = build(conv_relu("num_output: 16 kernel_size: 3 pad: 1", (2, 4, 6, 6)), monkeypatch)
    with logged(logging.INFO) as messages:
        times = time_net(net, 1)
    lines = [message for message in messages if "engine:" in message]
    assert any("relu1" in line and "engine: fused into conv1" in line for line in lines), lines
    assert any("conv1" in line and "engine: oneDNN 3." in line for line in lines), lines
    assert set(times) == {"in", "conv1", "relu1"}


FIRE = """
force_backward: true
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 3 dim: 4 dim: 5 dim: 5 } } }
layer { name: "e1" type: "Convolution" bottom: "x" top: "e1"
        convolution_param { num_output: 6 kernel_size: 1 %(fill)s } }
layer { name: "r1" type: "ReLU" bottom: "e1" top: "e1" %(r1)s }
layer { name: "e3" type: "Convolution" bottom: "x" top: "e3"
        convolution_param { num_output: 5 kernel_size: 3 pad: 1 %(fill)s } }
layer { name: "r3" type: "ReLU" bottom: "e3" top: "e3" }
layer { name: "cat" type: "Concat" bottom: "e1" bottom: "e3" top: "cat" }
layer { name: "out" type: "Convolution" bottom: "cat" top: "y"
        convolution_param { num_output: 3 kernel_size: 1 %(fill)s } }
%(after)s
"""


def fire(r1="", after=""):
    return FIRE % {"fill": FILL, "r1": r1, "after": after}


def blob_diffs(net):
    return [b.diff.copy() for b in net.blobs.values()] + [b.diff.copy() for n in net.params for b in net.params[n]]


def test_concat_computes_the_relu_backwards_bit_for_bit(monkeypatch):
    """Concat's backward hands each in-place ReLU's bottom its slice times (bottom > 0), which the copy
    then the ReLU's backward leave there: every blob's diff equal, and the ReLUs' backward not run."""
    fused, plain = twin_nets(fire(), monkeypatch)
    at = [layer.name for layer in fused.layers].index
    assert fused.bottom_relu == {at("cat"): {0: at("r1"), 1: at("r3")}} and plain.bottom_relu == {}
    x = np.random.default_rng(0).standard_normal((3, 4, 5, 5)).astype(np.float32)
    for net in (fused, plain):
        net.forward(x=x)
        net.clear_param_diffs()
        net.backward(y=np.random.default_rng(1).standard_normal((3, 3, 5, 5)).astype(np.float32))
    assert (fused.blobs["e1"].data == 0).any() and (fused.blobs["e3"].data == 0).any()
    assert_bits(blob_diffs(fused), blob_diffs(plain), "diffs")
    ran = []
    monkeypatch.setattr(type(fused.layer_dict["r1"]), "backward", lambda self, *a: ran.append(self.name))
    fused.backward(y=np.ones((3, 3, 5, 5), np.float32))
    assert ran == []                           # both ReLU backwards were the Concat's


@pytest.mark.parametrize("start, end", [("cat", "r3"), ("cat", "e3"), ("out", "cat"), ("r3", "e1"), (None, "e3")])
def test_a_partial_backward_runs_the_relus_it_reaches(start, end, monkeypatch):
    """backward(start, end) splitting a Concat from its ReLUs: those left out keep the Concat's copy."""
    fused, plain = twin_nets(fire(), monkeypatch)
    x = np.random.default_rng(0).standard_normal((3, 4, 5, 5)).astype(np.float32)
    for net in (fused, plain):
        net.forward(x=x)
        for blob in net.blobs.values():
            blob.diff[...] = np.random.default_rng(2).standard_normal(blob.shape)
        net.clear_param_diffs()
        net.backward(start=start, end=end)
    assert_bits(blob_diffs(fused), blob_diffs(plain), f"backward({start}, {end})")


def test_a_backward_hook_sees_every_relu(monkeypatch):
    fused, plain = twin_nets(fire(), monkeypatch)
    x = np.random.default_rng(0).standard_normal((3, 4, 5, 5)).astype(np.float32)
    seen = {}
    for net in (fused, plain):
        names = []
        net.after_backward(lambda i, net=net, names=names: names.append((i, net.blobs["e1"].diff.copy())))
        net.forward(x=x)
        net.backward(y=np.ones((3, 3, 5, 5), np.float32))
        seen[net is fused] = names
    assert [i for i, _ in seen[True]] == [i for i, _ in seen[False]]
    assert_bits([d for _, d in seen[True]], [d for _, d in seen[False]], "e1's diff after each layer")


@pytest.mark.parametrize("why, text", [
    ("leaky ReLU", fire(r1="relu_param { negative_slope: 0.1 }")),
    ("engine CAFFE", fire(r1="relu_param { engine: CAFFE }")),
    ("read after the Concat too", fire(after='layer { name: "p" type: "Pooling" bottom: "e1" top: "p" '
                                             'pooling_param { pool: MAX kernel_size: 2 } }')),
])
def test_no_concat_fusion_where_the_diff_could_differ(why, text, monkeypatch):
    fused, plain = twin_nets(text, monkeypatch)
    cat = [layer.name for layer in fused.layers].index("cat")
    assert 0 not in fused.bottom_relu.get(cat, {}) and 1 in fused.bottom_relu[cat], why
    x = np.random.default_rng(0).standard_normal((3, 4, 5, 5)).astype(np.float32)
    for net in (fused, plain):
        net.forward(x=x)
        net.clear_param_diffs()
        net.backward(**{k: np.ones(v.shape, np.float32) for k, v in net.blobs.items() if k in net.outputs})
    assert_bits(blob_diffs(fused), blob_diffs(plain), why)


def test_non_finite_diffs_and_values_stay_caffes(monkeypatch):
    fused, plain = twin_nets(fire(), monkeypatch)
    x = np.random.default_rng(0).standard_normal((3, 4, 5, 5)).astype(np.float32)
    dy = np.random.default_rng(1).standard_normal((3, 3, 5, 5)).astype(np.float32)
    dy[0, 0, 0, 0], dy[1, 2, 3, 4] = np.inf, np.nan
    out = []
    for net in (fused, plain):
        net.forward(x=x)
        net.blobs["e3"].data[0, 0, 0, :2] = (np.nan, np.inf)
        net.clear_param_diffs()
        net.backward(y=dy)
        out.append([np.nan_to_num(d) for d in blob_diffs(net)] + [np.isnan(d) for d in blob_diffs(net)])
    assert_bits(out[0][:len(out[0]) // 2], out[1][:len(out[1]) // 2], "diffs")
    assert all(np.array_equal(a, b) for a, b in zip(out[0][len(out[0]) // 2:], out[1][len(out[1]) // 2:]))


def test_firecaffe_time_runs_the_concat_fused(monkeypatch):
    fused, plain = twin_nets(fire(), monkeypatch)
    ran = []
    concat = type(fused.layer_dict["cat"])
    monkeypatch.setattr(concat, "backward_relu", lambda self, *a, real=concat.backward_relu: ran.append(1) or real(self, *a))
    time_net(fused, 1)
    time_net(plain, 1)
    assert ran == [1, 1]          # the warm-up pass and the timed one, on the fused net only
