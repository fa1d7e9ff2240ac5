"""Pooling on oneDNN (firecaffe/ops/dnnl/pool.py) against the NumPy path: Caffe's
output size, MAX's first-maximum routing of ties, AVE's divisor."""
import numpy as np
import pytest

from firecaffe.engine.testing import make_layer
from firecaffe.ops import dnnl

pytestmark = pytest.mark.skipif(not dnnl.AVAILABLE, reason=f"oneDNN not loaded: {dnnl.REASON}")


def pair(params, x):
    text = f'type: "Pooling" pooling_param {{ {params} }}'
    return make_layer(text, [x], dtype=np.float32), make_layer(text, [x.astype(np.float32).astype(np.float64)])


def run(layer, bottom, top, dy):
    layer.forward(bottom, top)
    top[0].diff[...] = dy
    bottom[0].diff[...] = np.nan
    layer.backward(top, [True], bottom)
    return top[0].data.copy(), bottom[0].diff.copy()


def inputs(shape, seed=0):
    gen = np.random.default_rng(seed)
    x = np.maximum(gen.standard_normal(shape), 0)           # after a ReLU: all-zero windows tie
    x[0, 0] = 0                                              # a whole plane of ties
    x[0, 1] = np.round(gen.standard_normal(shape[2:]))       # ties among equal integers
    return x


@pytest.mark.parametrize("params, shape, on_dnnl", [
    ("pool: MAX kernel_size: 3 stride: 2", (2, 3, 11, 11), True),           # SqueezeNet's: rounds up
    ("pool: MAX kernel_size: 3 stride: 2", (2, 3, 10, 10), True),
    ("pool: MAX kernel_size: 2 stride: 2", (2, 3, 7, 8), True),
    ("pool: MAX kernel_size: 3 stride: 2 pad: 1", (2, 3, 9, 10), True),
    ("pool: MAX kernel_size: 3 stride: 1 pad: 1", (2, 3, 6, 6), True),
    ("pool: MAX kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1", (2, 3, 7, 6), True),
    ("pool: MAX kernel_size: 3 stride: 2 round_mode: FLOOR", (2, 3, 11, 11), True),
    ("pool: MAX kernel_size: 3 stride: 2 round_mode: FLOOR", (2, 3, 10, 10), False),   # a dropped column
    ("pool: AVE kernel_size: 3 stride: 2", (2, 3, 11, 11), True),
    ("pool: AVE kernel_size: 3 stride: 1 pad: 1", (2, 3, 6, 7), True),
    ("pool: AVE kernel_size: 3 stride: 2", (2, 3, 10, 10), False),          # far window clipped: NumPy
    ("pool: AVE kernel_size: 2 stride: 2 pad: 1", (2, 3, 6, 6), True),
    ("pool: MAX global_pooling: true", (2, 3, 5, 5), False),
])
def test_dnnl_pooling_matches_the_numpy_path(params, shape, on_dnnl):
    (fast, fb, ft), (ref, rb, rt) = pair(params, inputs(shape))
    dy = np.random.default_rng(1).standard_normal(ft[0].shape)
    got, expect = run(fast, fb, ft, dy), run(ref, rb, rt, dy)
    assert fast.engine_name == (dnnl.VERSION if on_dnnl else "NumPy") and ref.engine_name == "NumPy"
    np.testing.assert_allclose(got[0], expect[0], rtol=1e-6, atol=1e-6, err_msg="top")
    np.testing.assert_allclose(got[1], expect[1], rtol=1e-6, atol=1e-6, err_msg="bottom diff")


def test_max_pooling_routes_a_tie_to_the_first_maximum():
    """A 2x2 window of equal values: Caffe sends the whole gradient to its first cell."""
    (layer, bottom, top), _ = pair("pool: MAX kernel_size: 2 stride: 2", np.ones((1, 1, 2, 4)))
    got = run(layer, bottom, top, np.array([[[[1.0, 2.0]]]]))
    assert layer.engine_name == dnnl.VERSION
    np.testing.assert_array_equal(got[1], [[[[1, 0, 2, 0], [0, 0, 0, 0]]]])


def test_argmax_top_and_engine_caffe_stay_on_numpy():
    x = inputs((1, 2, 5, 5))
    mask, _, _ = make_layer('type: "Pooling" pooling_param { pool: MAX kernel_size: 2 stride: 2 }', [x],
                            dtype=np.float32, num_top=2)
    caffe, _, _ = make_layer('type: "Pooling" pooling_param { pool: MAX kernel_size: 2 engine: CAFFE }', [x],
                             dtype=np.float32)
    for layer in (mask, caffe):
        assert not layer.dnnl_ran and layer.engine_name == "NumPy"


@pytest.mark.parametrize("layout", ["plain", "nChw8c", "nChw16c"])
def test_each_layout_with_a_jit_kernel_gives_caffes_numbers(layout, monkeypatch):
    """Pooling takes the first layout where oneDNN has jit kernels (the plain arrays, else channel
    blocks of 8 or 16, with reorders): each such layout, tried alone, routes ties as Caffe and
    matches the NumPy path; a layout without one leaves the layer on NumPy."""
    from firecaffe.ops.dnnl import pool
    monkeypatch.setattr(pool, "LAYOUTS", (layout,))
    pool.geometry.cache_clear()
    try:
        for params, shape in [("pool: MAX kernel_size: 3 stride: 2", (2, 11, 11, 11)),
                              ("pool: MAX kernel_size: 2 stride: 2", (1, 3, 2, 4)),
                              ("pool: AVE kernel_size: 3 stride: 1 pad: 1", (2, 9, 6, 7))]:
            x = inputs(shape) if shape[1] > 1 else np.ones(shape)
            (fast, fb, ft), (ref, rb, rt) = pair(params, x)
            dy = np.random.default_rng(1).standard_normal(ft[0].shape)
            got, expect = run(fast, fb, ft, dy), run(ref, rb, rt, dy)
            geo = pool.geometry("MAX" if "MAX" in params else "AVE", fb[0].shape, ft[0].shape,
                                tuple(fast.kernel), fast.stride, fast.pad)
            assert fast.engine_name == (dnnl.VERSION if geo.impl else "NumPy"), (layout, geo.impl)
            assert geo.impl is None or (geo.impl.startswith("jit") and geo.layout == layout)
            if "MAX" in params:          # a maximum is exact, and the ties' gradient must land where Caffe's does
                np.testing.assert_array_equal(got[0], expect[0].astype(np.float32), err_msg=f"{layout} {params}")
            for a, b in zip(got, expect):
                np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6, err_msg=f"{layout} {params}")
    finally:
        pool.geometry.cache_clear()


def test_the_blocked_tags_are_the_layouts_they_name():
    """oneDNN's tags nChw8c and nChw16c by their enum values (api.TAG_*): a reorder from the plain
    array puts channel c of pixel p at block c // b, offset (p * b + c % b)."""
    from firecaffe.ops.dnnl import api
    from firecaffe.ops.dnnl.prim import MemoryDesc, _memory, _Reorder
    shape = (1, 20, 1, 3)
    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    for layout, b in [("nChw8c", 8), ("nChw16c", 16)]:
        plain, blocked = MemoryDesc(shape), MemoryDesc(shape, layout)
        out = np.full(-(-20 // b) * b * 3, -1, np.float32)
        _Reorder(plain.handle, blocked.handle).run(_memory(plain.handle, x.ctypes.data),
                                                    _memory(blocked.handle, out.ctypes.data))
        expect = np.zeros_like(out)
        for c in range(20):
            for p in range(3):
                expect[(c // b) * b * 3 + p * b + c % b] = x[0, c, 0, p]
        np.testing.assert_array_equal(out, expect, err_msg=layout)
