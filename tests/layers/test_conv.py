import numpy as np
import pytest

from firecaffe.errors import FirecaffeError
from firecaffe.ops import conv_base as conv
from firecaffe.engine.testing import check_gradient, make_layer

from tests import _required

GAUSS = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }'


def conv_text(params, kind="Convolution"):
    return f'type: "{kind}" convolution_param {{ {params} {GAUSS} }}'


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.fixture(params=["batch_major", "whole_batch"])
def layout(request, monkeypatch):
    """Run a test with both column layouts (per-sample GEMMs, one whole-batch GEMM)."""
    monkeypatch.setattr(conv, "BATCH_MAJOR_MIN_POSITIONS", 0 if request.param == "batch_major" else 10**9)
    return request.param


def test_convolution_forward_hand_example():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    layer, bottom, top = make_layer(
        'type: "Convolution" convolution_param { num_output: 1 kernel_size: 2 '
        'weight_filler { type: "constant" value: 1 } bias_filler { type: "constant" value: 0.5 } }', [x])
    layer.forward(bottom, top)
    # each output is the sum of a 2x2 window, plus the bias
    np.testing.assert_allclose(top[0].data, [[[[8.5, 12.5], [20.5, 24.5]]]])
    assert layer.blobs[0].shape == (1, 1, 2, 2) and layer.blobs[1].shape == (1,)


def test_convolution_pads_with_zeros_and_strides():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    layer, bottom, top = make_layer(
        'type: "Convolution" convolution_param { num_output: 1 kernel_size: 3 pad: 1 stride: 2 '
        'bias_term: false weight_filler { type: "constant" value: 1 } }', [x])
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, [[[[0 + 1 + 3 + 4, 1 + 2 + 4 + 5], [3 + 4 + 6 + 7, 4 + 5 + 7 + 8]]]])


@pytest.mark.parametrize("params", [
    "num_output: 4 kernel_size: 3",
    "num_output: 4 kernel_size: 3 pad: 1 stride: 2",
    "num_output: 3 kernel_h: 3 kernel_w: 2 pad_h: 2 pad_w: 1 stride_h: 1 stride_w: 3",
    "num_output: 4 kernel_size: 3 dilation: 2 pad: 2",
    "num_output: 6 kernel_size: 3 group: 2 pad: 1",
    "num_output: 4 kernel_size: 3 group: 4 pad: 1 bias_term: false",
    "num_output: 5 kernel_size: 1",
    "num_output: 5 kernel_size: 1 stride: 2",
])
def test_convolution_matches_torch(params, layout):
    torch = _required.torch()
    x = rand(3, 4, 7, 8)
    layer, bottom, top = make_layer(conv_text(params), [x])
    layer.forward(bottom, top)
    p = layer.param.convolution_param
    bias = torch.tensor(layer.blobs[1].data) if p.bias_term else None
    stride = (p.stride_h, p.stride_w) if p.HasField("stride_h") else (list(p.stride) or [1])[0]
    pad = (p.pad_h, p.pad_w) if p.HasField("pad_h") else (list(p.pad) or [0])[0]
    expect = torch.nn.functional.conv2d(
        torch.tensor(x), torch.tensor(layer.blobs[0].data), bias, stride=stride, padding=pad,
        dilation=(list(p.dilation) or [1])[0], groups=p.group).numpy()
    np.testing.assert_allclose(top[0].data, expect, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("params", [
    "num_output: 3 kernel_size: 3 pad: 1 stride: 2",
    "num_output: 2 kernel_size: 2 dilation: 2 pad: 1",
    "num_output: 4 kernel_size: 3 group: 2",
    "num_output: 4 kernel_size: 2 group: 4 stride: 2 pad: 1",           # depthwise
    "num_output: 3 kernel_size: 2 bias_term: false",
    "num_output: 3 kernel_size: 1",
    "num_output: 2 kernel_h: 1 kernel_w: 3 stride_h: 2 stride_w: 1 pad_w: 1",
])
def test_convolution_gradient(params, layout):
    layer, bottom, top = make_layer(conv_text(params), [rand(2, 4, 5, 5)])
    check_gradient(layer, bottom, top)


def test_convolution_multiple_bottoms_share_weights(layout):
    a, b = rand(2, 2, 4, 4, seed=1), rand(2, 2, 4, 4, seed=2)
    layer, bottom, top = make_layer(conv_text("num_output: 3 kernel_size: 3 pad: 1"), [a, b], num_top=2)
    check_gradient(layer, bottom, top)
    single, sb, st = make_layer(conv_text("num_output: 3 kernel_size: 3 pad: 1"), [b])
    for mine, theirs in zip(single.blobs, layer.blobs):
        mine.data[...] = theirs.data
    single.forward(sb, st)
    np.testing.assert_allclose(top[1].data, st[0].data)


def test_convolution_3d_spatial_and_axis():
    torch = _required.torch()
    x = rand(2, 3, 4, 5, 4)
    layer, bottom, top = make_layer(conv_text("num_output: 2 kernel_size: 2 kernel_size: 3 kernel_size: 2 "
                                              "pad: 1 stride: 2"), [x])
    layer.forward(bottom, top)
    expect = torch.nn.functional.conv3d(torch.tensor(x), torch.tensor(layer.blobs[0].data),
                                        torch.tensor(layer.blobs[1].data), stride=2, padding=1)
    np.testing.assert_allclose(top[0].data, expect.numpy(), rtol=1e-10, atol=1e-10)
    check_gradient(layer, bottom, top)


def test_convolution_accumulates_parameter_gradients():
    layer, bottom, top = make_layer(conv_text("num_output: 2 kernel_size: 3"), [rand(2, 2, 5, 5)])
    layer.forward(bottom, top)
    top[0].diff[...] = rand(*top[0].shape, seed=3)
    layer.backward(top, [True], bottom)
    once = [b.diff.copy() for b in layer.blobs]
    layer.backward(top, [True], bottom)
    for blob, g in zip(layer.blobs, once):
        np.testing.assert_allclose(blob.diff, 2 * g)


def test_convolution_keeps_float32():
    layer, bottom, top = make_layer(conv_text("num_output: 2 kernel_size: 3"),
                                    [rand(2, 2, 5, 5)], dtype=np.float32)
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    assert top[0].data.dtype == bottom[0].diff.dtype == layer.blobs[0].diff.dtype == np.float32


def test_convolution_flops():
    layer, bottom, top = make_layer(conv_text("num_output: 8 kernel_size: 3 group: 2 pad: 1"),
                                    [rand(2, 4, 5, 5)])
    assert layer.flops(bottom, top) == 2 * 2 * 8 * 25 * 2 * 9 + 2 * 8 * 25


@pytest.mark.parametrize("params, shape, words", [
    ("num_output: 2 kernel_size: 0", (1, 2, 5, 5), "kernel size"),
    ("num_output: 2", (1, 2, 5, 5), "kernel_size"),
    ("num_output: 2 kernel_size: 3 group: 2", (1, 3, 5, 5), "group 2"),
    ("num_output: 3 kernel_size: 3 group: 2", (1, 4, 5, 5), "num_output (3)"),
    ("num_output: 2 kernel_size: 7", (1, 2, 5, 5), "output would be empty"),
    ("num_output: 2 kernel_size: 3 kernel_h: 3 kernel_w: 3", (1, 2, 5, 5), "not both"),
    ("num_output: 2 kernel_h: 3", (1, 2, 5, 5), "together"),
    ("num_output: 2 kernel_size: 3 stride: 0", (1, 2, 5, 5), "stride"),
    ("kernel_size: 3", (1, 2, 5, 5), "num_output"),
    ("num_output: 2 kernel_size: 3 kernel_size: 3 kernel_size: 3", (1, 2, 5, 5), "kernel_size has 3"),
])
def test_convolution_rejects_bad_parameters(params, shape, words):
    with pytest.raises(FirecaffeError, match="layer 'test'") as info:
        make_layer(conv_text(params), [np.zeros(shape)])
    assert words in str(info.value)


def test_convolution_rejects_bottoms_of_different_shapes():
    with pytest.raises(FirecaffeError, match=r"bottom\[1\]"):
        make_layer(conv_text("num_output: 2 kernel_size: 3"), [np.zeros((1, 2, 5, 5)), np.zeros((1, 2, 6, 5))],
                   num_top=2)
    with pytest.raises(FirecaffeError, match="as many top"):
        make_layer(conv_text("num_output: 2 kernel_size: 3"), [np.zeros((1, 2, 5, 5))], num_top=2)


@pytest.mark.parametrize("params", [
    "num_output: 3 kernel_size: 3 stride: 2 pad: 1",
    "num_output: 4 kernel_size: 2 group: 2 dilation: 2",
    "num_output: 3 kernel_size: 1 bias_term: false",
])
def test_deconvolution_matches_torch_and_gradient(params):
    torch = _required.torch()
    x = rand(2, 4, 4, 3)
    layer, bottom, top = make_layer(conv_text(params, "Deconvolution"), [x])
    p = layer.param.convolution_param
    assert layer.blobs[0].shape[:2] == (4, p.num_output // p.group)
    layer.forward(bottom, top)
    bias = torch.tensor(layer.blobs[1].data) if p.bias_term else None
    expect = torch.nn.functional.conv_transpose2d(
        torch.tensor(x), torch.tensor(layer.blobs[0].data), bias, stride=(list(p.stride) or [1])[0],
        padding=(list(p.pad) or [0])[0], dilation=(list(p.dilation) or [1])[0], groups=p.group).numpy()
    np.testing.assert_allclose(top[0].data, expect, rtol=1e-10, atol=1e-10)
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize("kind, params", [
    ("Convolution", "num_output: 6 kernel_size: 1"),
    ("Convolution", "num_output: 6 kernel_size: 3 group: 2 pad: 1"),
    ("Deconvolution", "num_output: 4 kernel_size: 3 group: 2 stride: 2"),
])
def test_weight_gradient_summed_per_sample_matches_stacked(kind, params, monkeypatch):
    """Large batch-major weight gradients are summed one sample at a time."""
    monkeypatch.setattr(conv, "BATCH_MAJOR_MIN_POSITIONS", 0)
    diffs, weights = [], None
    for limit in (10**12, 0):                     # stacked, then summed per sample
        monkeypatch.setattr(conv, "STACKED_WEIGHT_GRAD_MAX_BYTES", limit)
        layer, bottom, top = make_layer(conv_text(params, kind), [rand(3, 4, 5, 5)])
        if weights is None:
            weights = [b.data.copy() for b in layer.blobs]
        for blob, w in zip(layer.blobs, weights):
            blob.data[...] = w
        layer.forward(bottom, top)
        top[0].diff[...] = rand(*top[0].shape, seed=3)
        layer.blobs[0].diff[...] = 1.0            # accumulates onto what is there
        layer.backward(top, [True], bottom)
        diffs.append((layer.blobs[0].diff.copy(), bottom[0].diff.copy()))
    np.testing.assert_allclose(diffs[1][0], diffs[0][0], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(diffs[1][1], diffs[0][1])
    if kind == "Convolution":
        check_gradient(layer, bottom, top)
