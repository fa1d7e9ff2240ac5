"""InnerProduct on oneDNN (firecaffe/ops/dnnl/ip.py) against the NumPy path in
float64 and against float64 central differences: axis, transpose, no bias."""
import numpy as np
import pytest

from firecaffe.ops import dnnl
from firecaffe.ops.dnnl import ip as dnnl_ip
from tests.layers.test_conv_dnnl import assert_close32, central_differences, run, twins

pytestmark = pytest.mark.skipif(not dnnl.AVAILABLE, reason=f"oneDNN not loaded: {dnnl.REASON}")

GAUSS = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }'


def pair(params, shape, seed=0):
    text = f'type: "InnerProduct" inner_product_param {{ {params} {GAUSS} }}'
    return twins(text, np.random.default_rng(seed).standard_normal(shape))


@pytest.fixture
def every_size(monkeypatch):
    """oneDNN for the small shapes of the tests too (by default only from 2^20 multiply-adds)."""
    monkeypatch.setattr(dnnl_ip, "MIN_MKN", 1)


@pytest.mark.parametrize("params, shape", [
    ("num_output: 5", (3, 4, 2, 2)),
    ("num_output: 5 axis: 2", (2, 3, 4, 2)),
    ("num_output: 4 transpose: true", (3, 2, 3)),
    ("num_output: 3 axis: -1 transpose: true", (2, 2, 5)),
    ("num_output: 6 bias_term: false", (4, 7)),
    ("num_output: 2 bias_term: false transpose: true", (1, 9)),
])
def test_dnnl_inner_product_matches_numpy_path_and_central_differences(every_size, params, shape):
    (fast, fb, ft), (ref, rb, rt) = pair(params, shape)
    dy = np.random.default_rng(1).standard_normal(ft[0].shape)
    got = run(fast, fb, ft, dy)
    assert fast.use_dnnl and fast.engine_name == dnnl.VERSION, "oneDNN refused a shape it should take"
    assert ref.engine_name == "NumPy" and got[0].dtype == np.float32
    expect = run(ref, rb, rt, dy)
    names = ["top", "bottom diff", "weight diff", "bias diff"]
    for mine, theirs, name in zip(got, expect, names):
        assert_close32(mine, theirs, f"{params}: {name} vs the NumPy path")
    for mine, theirs, name in zip(got[1:], central_differences(ref, rb, rt, dy), names[1:]):
        assert_close32(mine, theirs, f"{params}: {name} vs central differences")


def test_dnnl_inner_product_accumulates_and_skips_the_data_gradient(every_size):
    (layer, bottom, top), _ = pair("num_output: 3", (2, 4))
    layer.forward(bottom, top)
    top[0].diff[...] = np.random.default_rng(2).standard_normal(top[0].shape)
    bottom[0].diff[...] = 7.0
    layer.backward(top, [False], bottom)
    once = [p.diff.copy() for p in layer.blobs]
    layer.backward(top, [False], bottom)
    for p, g in zip(layer.blobs, once):
        np.testing.assert_allclose(p.diff, 2 * g, rtol=1e-6)
    assert (bottom[0].diff == 7.0).all()


def test_small_layers_and_float64_run_numpy():
    (small, _, _), (double, _, _) = pair("num_output: 10", (32, 500))      # LeNet's ip2: NumPy was faster
    assert small.engine_name == "NumPy" and double.engine_name == "NumPy"
    (big, _, _), _ = pair("num_output: 500", (32, 800))                       # LeNet's ip1
    assert big.engine_name == dnnl.VERSION
