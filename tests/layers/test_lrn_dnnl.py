"""LRN on oneDNN (firecaffe/ops/dnnl/lrn.py) against the NumPy path in float64
and against float64 central differences: both regions, Caffe's divisors, k
(ignored within a channel), windows wider than the blob, engine CAFFE."""
import numpy as np
import pytest

from firecaffe.engine.testing import make_layer
from firecaffe.ops import dnnl
from tests.layers.test_conv_dnnl import assert_close32, central_differences, run

pytestmark = pytest.mark.skipif(not dnnl.AVAILABLE, reason=f"oneDNN not loaded: {dnnl.REASON}")


def jit_lrn():
    """Whether oneDNN has jit LRN kernels (forward and backward) on this CPU: on AVX-512 it has, on
    AVX2 oneDNN 3.2's LRN backward is its reference kernel in every layout, so the NumPy path runs."""
    from firecaffe.ops.dnnl.lrn import LRNGeometry
    return LRNGeometry((2, 16, 4, 4), True, 5, 1e-4, 0.75, 1.0).fast


def pair(params, shape, seed=0):
    text = f'type: "LRN" lrn_param {{ {params} }}'
    x = np.random.default_rng(seed).standard_normal(shape) * 2
    return (make_layer(text, [x], dtype=np.float32),
            make_layer(text, [x.astype(np.float32).astype(np.float64)]))


@pytest.mark.parametrize("params, shape, on_dnnl", [
    ("local_size: 5 alpha: 0.0001 beta: 0.75", (2, 7, 5, 4), True),                  # AlexNet's
    ("local_size: 3 alpha: 0.7 beta: 0.75 k: 1.5", (2, 5, 3, 4), True),
    ("local_size: 5 alpha: 2 beta: 0.75 k: 2", (2, 16, 3, 3), True),
    ("local_size: 9 alpha: 1 beta: 0.75", (1, 4, 3, 3), True),                       # window wider than C
    ("local_size: 5 alpha: 0.5 beta: 0.75 k: 7 norm_region: WITHIN_CHANNEL", (2, 16, 5, 6), True),  # k unused
    # oneDNN's jit kernels take beta 0.75 only, and within a channel 8k channels and
    # windows no wider than the image: its reference kernels were slower than the
    # NumPy path, which runs these
    ("local_size: 5 alpha: 2 beta: 0.6 k: 2", (2, 16, 3, 3), False),
    ("local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL", (2, 3, 5, 6), False),
    ("local_size: 7 alpha: 1 beta: 0.75 norm_region: WITHIN_CHANNEL", (1, 16, 3, 3), False),
])
def test_dnnl_lrn_matches_numpy_path_and_central_differences(params, shape, on_dnnl):
    (fast, fb, ft), (ref, rb, rt) = pair(params, shape)
    dy = np.random.default_rng(1).standard_normal(shape)
    got = run(fast, fb, ft, dy)
    assert fast.engine_name == (dnnl.VERSION if on_dnnl and jit_lrn() else "NumPy") and ref.engine_name == "NumPy"
    assert got[0].dtype == np.float32
    expect = run(ref, rb, rt, dy)
    assert_close32(got[0], expect[0], f"{params}: top vs the NumPy path")
    assert_close32(got[1], expect[1], f"{params}: bottom diff vs the NumPy path")
    assert_close32(got[1], central_differences(ref, rb, rt, dy)[0], f"{params}: bottom diff vs central differences")


def test_two_layers_of_one_shape_keep_their_own_bottoms():
    """Each layer's backward reads the bottom its own forward reordered."""
    if not jit_lrn():
        pytest.skip("oneDNN has no jit LRN backward on this CPU: LRN runs the NumPy path")
    text = 'type: "LRN" lrn_param { local_size: 3 alpha: 1 beta: 0.75 }'
    gen = np.random.default_rng(3)
    a, b = gen.standard_normal((2, 16, 4, 4)), gen.standard_normal((2, 16, 4, 4))
    layers = [make_layer(text, [x], dtype=np.float32) for x in (a, b)]
    for layer, bottom, top in layers:
        layer.forward(bottom, top)
    for layer, bottom, top in reversed(layers):
        top[0].diff[...] = 1.0
        layer.backward(top, [True], bottom)
    for (layer, bottom, top), x in zip(layers, (a, b)):
        ref, rb, rt = make_layer(text, [x.astype(np.float32).astype(np.float64)])
        expect = run(ref, rb, rt, np.ones(x.shape))
        assert layer.engine_name == dnnl.VERSION
        assert_close32(bottom[0].diff, expect[1], "bottom diff")


def test_engine_caffe_and_float64_run_numpy():
    x = np.ones((1, 3, 2, 2))
    caffe, cb, ct = make_layer('type: "LRN" lrn_param { engine: CAFFE }', [x], dtype=np.float32)
    double, db, dt = make_layer('type: "LRN"', [x])
    for layer, bottom, top in ((caffe, cb, ct), (double, db, dt)):
        layer.forward(bottom, top)
        assert layer.engine_name == "NumPy"
