"""Convolution and Deconvolution on oneDNN (firecaffe/ops/dnnl/) against the
NumPy path in float64 and against float64 central differences."""
import numpy as np
import pytest

from firecaffe.engine.testing import make_layer
from firecaffe.ops import dnnl

pytestmark = pytest.mark.skipif(not dnnl.AVAILABLE, reason=f"oneDNN not loaded: {dnnl.REASON}")

GAUSS = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }'
SHAPES = [   # (kind, convolution_param, input shape)
    ("Convolution", "num_output: 3 kernel_size: 3 pad: 1 stride: 2", (2, 4, 7, 6)),
    ("Convolution", "num_output: 4 kernel_size: 3 dilation: 2 pad: 2", (2, 3, 7, 7)),
    ("Convolution", "num_output: 6 kernel_size: 3 group: 2 pad: 1", (3, 4, 5, 5)),
    ("Convolution", "num_output: 4 kernel_size: 2 group: 4 stride: 2 pad: 1", (2, 4, 6, 5)),
    ("Convolution", "num_output: 3 kernel_size: 2 bias_term: false", (2, 4, 5, 5)),
    ("Convolution", "num_output: 5 kernel_size: 1", (2, 4, 5, 5)),
    ("Convolution", "num_output: 5 kernel_size: 1 stride: 2", (2, 4, 5, 6)),
    ("Convolution", "num_output: 2 kernel_h: 1 kernel_w: 3 stride_h: 2 stride_w: 1 pad_w: 1", (2, 4, 5, 5)),
    ("Convolution", "num_output: 3 kernel_size: 3 stride: 2", (2, 2, 6, 6)),          # floor drops a row
    ("Convolution", "num_output: 16 kernel_size: 3 pad: 1 group: 2", (2, 16, 6, 6)),  # blocked layouts
    ("Convolution", "num_output: 2 kernel_size: 2 kernel_size: 3 kernel_size: 2 pad: 1 stride: 2",
     (2, 3, 4, 5, 4)),
    ("Convolution", "num_output: 3 kernel_size: 3 pad: 1", (2, 2, 9)),
    ("Deconvolution", "num_output: 3 kernel_size: 3 stride: 2 pad: 1", (2, 4, 4, 3)),
    ("Deconvolution", "num_output: 4 kernel_size: 2 group: 2 dilation: 2", (2, 4, 4, 3)),
    ("Deconvolution", "num_output: 3 kernel_size: 1 bias_term: false", (2, 4, 4, 3)),
    ("Deconvolution", "num_output: 16 kernel_size: 3 stride: 2 pad: 1", (2, 8, 4, 3)),         # blocked
    ("Convolution", "num_output: 8 kernel_size: 3 stride: 2 dilation: 2 pad: 2", (2, 8, 9, 8)),  # blocked
    # 1x1 stride 1: weight gradients from OpenBLAS's products (ops/conv.py _blas_weight_grad)
    ("Convolution", "num_output: 6 kernel_size: 1 group: 2", (3, 4, 3, 5)),
    ("Deconvolution", "num_output: 6 kernel_size: 1 group: 2", (2, 4, 3, 4)),
]


def pair(kind, params, shape, seed=0):
    """The same layer twice: float32 (oneDNN) and float64 (NumPy), same weights and input."""
    text = f'type: "{kind}" convolution_param {{ {params} {GAUSS} }}'
    return twins(text, np.random.default_rng(seed).standard_normal(shape))


def twins(text, x):
    """The layer of ``text`` twice, float32 and float64, with the float32 one's weights."""
    fast = make_layer(text, [x], dtype=np.float32)
    ref = make_layer(text, [x.astype(np.float32).astype(np.float64)])
    for mine, theirs in zip(ref[0].blobs, fast[0].blobs):
        mine.data[...] = theirs.data
    return fast, ref


def run(layer, bottom, top, dy):
    layer.forward(bottom, top)
    top[0].diff[...] = dy
    for p in layer.blobs:
        p.diff[...] = 0
    layer.backward(top, [True], bottom)
    return [top[0].data.copy(), bottom[0].diff.copy()] + [p.diff.copy() for p in layer.blobs]


def central_differences(layer, bottom, top, dy, eps=1e-6):
    """d<top, dy>/d(bottom and parameters), float64, by central differences."""
    grads = []
    for arr in [bottom[0].data] + [p.data for p in layer.blobs]:
        g = np.empty_like(arr)
        flat, gflat = arr.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            keep = flat[i]
            flat[i] = keep + eps
            layer.forward(bottom, top)
            up = float(np.sum(top[0].data * dy))
            flat[i] = keep - eps
            layer.forward(bottom, top)
            flat[i] = keep
            gflat[i] = (up - float(np.sum(top[0].data * dy))) / (2 * eps)
        grads.append(g)
    return grads


def assert_close32(mine, expect, what):
    scale = max(1.0, float(np.abs(expect).max()))
    np.testing.assert_allclose(mine, expect, rtol=0, atol=3e-5 * scale, err_msg=what)


@pytest.mark.parametrize("kind, params, shape", SHAPES)
def test_dnnl_layer_matches_numpy_path_and_central_differences(kind, params, shape):
    (fast, fb, ft), (ref, rb, rt) = pair(kind, params, shape)
    assert fast.use_dnnl and not ref.use_dnnl
    dy = np.random.default_rng(1).standard_normal(ft[0].shape)
    got = run(fast, fb, ft, dy)
    assert fast.use_dnnl, "oneDNN refused a shape it should take"
    assert got[0].dtype == np.float32
    expect = run(ref, rb, rt, dy)
    names = ["top", "bottom diff", "weight diff", "bias diff"]
    for mine, theirs, name in zip(got, expect, names):
        assert_close32(mine, theirs, f"{kind} {params}: {name} vs the NumPy path")
    for mine, theirs, name in zip(got[1:], central_differences(ref, rb, rt, dy), names[1:]):
        assert_close32(mine, theirs, f"{kind} {params}: {name} vs central differences")


@pytest.mark.parametrize("geometry", ["kernel_size: 3 pad: 1", "kernel_size: 1"])
def test_dnnl_accumulates_parameter_gradients_and_shares_weights_across_bottoms(geometry):
    text = f'type: "Convolution" convolution_param {{ num_output: 8 {geometry} {GAUSS} }}'
    gen = np.random.default_rng(0)
    a, b = gen.standard_normal((2, 8, 6, 6)), gen.standard_normal((2, 8, 6, 6))
    layer, bottom, top = make_layer(text, [a, b], dtype=np.float32, num_top=2)
    layer.forward(bottom, top)
    for t in top:
        t.diff[...] = gen.standard_normal(t.shape)
    layer.backward(top, [True, True], bottom)
    once = [p.diff.copy() for p in layer.blobs]
    layer.backward(top, [True, True], bottom)
    assert layer.use_dnnl
    for p, g in zip(layer.blobs, once):
        np.testing.assert_allclose(p.diff, 2 * g, rtol=1e-6)
    single, sb, st = make_layer(text, [b], dtype=np.float32)
    for mine, theirs in zip(single.blobs, layer.blobs):
        mine.data[...] = theirs.data
    single.forward(sb, st)
    np.testing.assert_allclose(top[1].data, st[0].data, rtol=1e-6)


def test_engine_caffe_selects_the_numpy_path():
    text = f'type: "Convolution" convolution_param {{ num_output: 2 kernel_size: 3 engine: CAFFE {GAUSS} }}'
    layer, _, _ = make_layer(text, [np.ones((1, 2, 5, 5))], dtype=np.float32)
    assert not layer.use_dnnl and layer.engine_name == "NumPy"
    default, _, _ = make_layer(text.replace("engine: CAFFE", ""), [np.ones((1, 2, 5, 5))], dtype=np.float32)
    assert default.use_dnnl and default.engine_name.startswith("oneDNN 3.")


def test_a_shape_onednn_refuses_runs_the_numpy_path():
    """oneDNN takes 1 to 3 spatial axes; Caffe's N-d convolution takes 4."""
    from firecaffe.engine.testing import logged
    with logged() as messages:
        (fast, fb, ft), (ref, rb, rt) = pair("Convolution", "num_output: 2 kernel_size: 2", (1, 2, 3, 3, 3, 3))
        dy = np.random.default_rng(1).standard_normal((1, 2, 2, 2, 2, 2))
        got = run(fast, fb, ft, dy)
    assert not fast.use_dnnl and fast.engine_name == "NumPy"
    assert [message for message in messages if "oneDNN refused" in message] == [
        "layer 'test' (Convolution): oneDNN refused it (dnnl_convolution_forward_primitive_desc_create: "
        "invalid arguments); it runs the NumPy path"]
    for mine, theirs in zip(got, run(ref, rb, rt, dy)):
        assert_close32(mine, theirs, "refused shape on the NumPy path")


def test_one_by_one_over_many_positions_runs_on_onednn():
    """1x1 layers over 2048 or more positions left the NumPy path (whole nets measured
    faster with them on oneDNN, docs/performance.md); they agree with it."""
    (fast, bottom, top), ref = pair("Convolution", "num_output: 4 kernel_size: 1", (2, 3, 48, 48))
    assert fast.engine_name.startswith("oneDNN")
    dy = np.random.default_rng(1).standard_normal(top[0].shape)
    for mine, theirs, what in zip(run(fast, bottom, top, dy), run(*ref, dy), ("top", "dx", "dw", "db")):
        assert_close32(mine, theirs, what)


@pytest.mark.parametrize("kind", ["Convolution", "Deconvolution"])
@pytest.mark.parametrize("params, shape, on_blas", [
    ("num_output: 5 kernel_size: 1", (2, 3, 46, 46), True),            # 2116 positions per sample
    ("num_output: 6 kernel_size: 1 group: 2", (2, 4, 48, 45), True),
    ("num_output: 5 kernel_size: 1", (3, 4, 6, 7), False),              # 42: oneDNN's
])
def test_one_by_one_weight_gradients_on_openblas_and_on_onednn_agree(kind, params, shape, on_blas, monkeypatch):
    """The weight and bias gradients of 1x1 stride-1 layers over 2048 or more positions per sample
    come from OpenBLAS's per-sample products (measured faster than oneDNN's gemm convolution there,
    docs/architecture.md), the others' from oneDNN; with the switch off, all from oneDNN. Both sum
    into the diffs Caffe's way and agree, and with the NumPy path."""
    from firecaffe.ops import conv
    calls = []
    blas = conv._blas_weight_grad
    monkeypatch.setattr(conv, "_blas_weight_grad", lambda *a: calls.append(1) or blas(*a))
    (fast, bottom, top), (ref, rb, rt) = pair(kind, params, shape)
    dy = np.random.default_rng(1).standard_normal(top[0].shape)
    fast.forward(bottom, top)
    top[0].diff[...] = dy
    results = {}
    for switch in (True, False):
        monkeypatch.setattr(conv, "PLAIN_WEIGHT_GRAD_ON_BLAS", switch)
        calls.clear()
        for p in fast.blobs:
            p.diff[...] = 1.0                  # Caffe accumulates into what is there
        bottom[0].diff[...] = np.nan           # and overwrites the data gradient
        fast.backward(top, [True], bottom)
        assert fast.use_dnnl
        assert len(calls) == (1 if switch and on_blas else 0)
        results[switch] = [bottom[0].diff.copy()] + [p.diff.copy() for p in fast.blobs]
    assert fast.bias_term and len(results[True]) == 3
    for mine, theirs, what in zip(results[True], results[False], ("dx", "dw", "db")):
        assert_close32(mine, theirs, f"{kind} {what}: OpenBLAS against oneDNN")
    expect = run(ref, rb, rt, dy)
    for mine, theirs, what in zip(results[True], expect[1:], ("dx", "dw", "db")):
        offset = 0.0 if what == "dx" else 1.0
        assert_close32(mine - offset, theirs, f"{kind} {what}: against the NumPy path")
