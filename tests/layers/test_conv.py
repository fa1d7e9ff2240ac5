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


DECONV_PARAMS = [
    "num_output: 3 kernel_size: 3 stride: 2 pad: 1",
    "num_output: 4 kernel_size: 2 group: 2 dilation: 2",
    "num_output: 3 kernel_size: 1 bias_term: false",
    "num_output: 2 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0",
    "num_output: 6 kernel_size: 3 group: 2 stride: 3 pad: 2",
]


def _geometry(p):
    """(kernel, stride, pad, dilation) as (h, w) pairs, from a ConvolutionParameter."""
    def pair(repeated, default, h=None, w=None):
        if h and (p.HasField(h) or p.HasField(w)):
            return getattr(p, h), getattr(p, w)
        values = list(repeated) or [default]
        return values[0], values[-1]
    return (pair(p.kernel_size, None, "kernel_h", "kernel_w"), pair(p.stride, 1, "stride_h", "stride_w"),
            pair(p.pad, 0, "pad_h", "pad_w"), pair(p.dilation, 1))


def deconvolve_by_scatter(x, weight, bias, p):
    """Transposed convolution written out in float64 loops: each input value, times the
    kernel of its channel, added into the output window it spreads to."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _geometry(p)
    n, channels, height, width = x.shape
    per_group_in, per_group_out = channels // p.group, p.num_output // p.group
    full = np.zeros((n, p.num_output, sh * (height - 1) + dh * (kh - 1) + 1,
                     sw * (width - 1) + dw * (kw - 1) + 1))
    for c in range(channels):
        group = c // per_group_in
        for o in range(per_group_out):
            for i in range(kh):
                for j in range(kw):
                    rows = slice(i * dh, i * dh + sh * (height - 1) + 1, sh)
                    cols = slice(j * dw, j * dw + sw * (width - 1) + 1, sw)
                    full[:, group * per_group_out + o, rows, cols] += x[:, c] * weight[c, o, i, j]
    out = full[:, :, ph:full.shape[2] - ph, pw:full.shape[3] - pw]
    return out + (bias[None, :, None, None] if bias is not None else 0)


@pytest.mark.parametrize("params", DECONV_PARAMS)
def test_deconvolution_forward_matches_a_direct_scatter(params):
    x = rand(2, 4, 4, 3)
    layer, bottom, top = make_layer(conv_text(params, "Deconvolution"), [x])
    p = layer.param.convolution_param
    assert layer.blobs[0].shape[:2] == (4, p.num_output // p.group)
    layer.forward(bottom, top)
    expect = deconvolve_by_scatter(x, layer.blobs[0].data, layer.blobs[1].data if p.bias_term else None, p)
    assert top[0].shape == expect.shape
    np.testing.assert_allclose(top[0].data, expect, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("params", DECONV_PARAMS)
def test_deconvolution_gradient(params, layout):
    layer, bottom, top = make_layer(conv_text(params, "Deconvolution"), [rand(2, 4, 4, 3)])
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize("params", DECONV_PARAMS)
def test_deconvolution_is_the_adjoint_of_convolution_with_the_same_weights(params, layout):
    """<conv(x), y> == <x, deconv(y)>: Deconvolution applies the transpose of the
    linear map Convolution applies, with the same weight blob (biases off)."""
    y = rand(2, 4, 4, 3, seed=1)
    unbiased = params.replace("bias_term: false", "") + " bias_term: false"
    deconv, d_bottom, d_top = make_layer(conv_text(unbiased, "Deconvolution"), [y])
    deconv.forward(d_bottom, d_top)
    x = rand(*d_top[0].shape, seed=2)
    # Convolution back from the deconvolution's output shape to its input's: num_output = y's channels
    p = deconv.param.convolution_param
    conv_params = unbiased.replace(f"num_output: {p.num_output}", f"num_output: {y.shape[1]}", 1)
    layer, c_bottom, c_top = make_layer(conv_text(conv_params), [x])
    assert layer.blobs[0].shape == deconv.blobs[0].shape
    layer.blobs[0].data[...] = deconv.blobs[0].data
    layer.forward(c_bottom, c_top)
    assert c_top[0].shape == y.shape
    left, right = float(np.sum(c_top[0].data * y)), float(np.sum(x * d_top[0].data))
    assert left == pytest.approx(right, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("params", DECONV_PARAMS)
def test_deconvolution_matches_torch(params):
    torch = _required.torch()
    x = rand(2, 4, 4, 3)
    layer, bottom, top = make_layer(conv_text(params, "Deconvolution"), [x])
    p = layer.param.convolution_param
    layer.forward(bottom, top)
    bias = torch.tensor(layer.blobs[1].data) if p.bias_term else None
    (kh, kw), stride, pad, dilation = _geometry(p)
    expect = torch.nn.functional.conv_transpose2d(
        torch.tensor(x), torch.tensor(layer.blobs[0].data), bias, stride=stride, padding=pad, dilation=dilation,
        groups=p.group).numpy()
    np.testing.assert_allclose(top[0].data, expect, rtol=1e-10, atol=1e-10)


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
