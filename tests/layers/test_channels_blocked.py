"""BatchNorm and Scale on their cache-blocked passes (firecaffe/ops/_channels.py)
against their reference passes (``blocked = False``) and float64 finite
differences, with blocks small enough that every array is cut into many
(sample, channel range) blocks, on one thread and on two."""
import numpy as np
import pytest

from firecaffe.core.blob import Blob
from firecaffe.engine.testing import check_gradient, layer_param, make_layer
from firecaffe.ops import _channels, _threads, create_layer


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def small_blocks(request, monkeypatch):
    monkeypatch.setattr(_channels, "BLOCK", 24)
    monkeypatch.setattr(_threads, "ELTWISE_THREADS", request.param)


def rand(shape, seed, dtype=np.float32):
    return (np.random.default_rng(seed).standard_normal(shape) * 2 + 0.5).astype(dtype)


def setup(text, arrays, in_place, dtype=np.float32, phase="TRAIN"):
    if not in_place:
        return make_layer(text, arrays, phase=phase, dtype=dtype)
    param = layer_param(text)
    param.name = "test"
    layer = create_layer(param, phase=phase, dtype=dtype)
    blobs = []
    for i, a in enumerate(arrays):
        blob = Blob(a.shape, dtype, name=f"b{i}")
        blob.data[...] = a
        blobs.append(blob)
    layer.setup(blobs, [blobs[0]])
    return layer, blobs, [blobs[0]]


def step(layer, bottom, top, dy, passes=2):
    """``passes`` forwards (the running statistics move) and two backwards of the last."""
    x = [b.data.copy() for b in bottom]
    for _ in range(passes):
        for b, a in zip(bottom, x):
            b.data[...] = a
        layer.forward(bottom, top)
    out = top[0].data.copy()
    grads = []
    for _ in range(2):                   # a second backward sees what the first saw
        top[0].diff[...] = dy
        for p in layer.blobs:
            p.diff[...] = 0
        layer.backward(top, [True] * len(bottom), bottom)
        grads.append([b.diff.copy() for b in bottom] + [p.diff.copy() for p in layer.blobs])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)
    return out, grads[0], [p.data.copy() for p in layer.blobs]


def compare(text, arrays, in_place, phase="TRAIN", rtol=2e-5, atol=2e-5):
    dy = rand(arrays[0].shape, 99)
    results, first = [], None
    for blocked in (True, False):
        layer, bottom, top = setup(text, arrays, in_place, phase=phase)
        layer.blocked = blocked
        for i, p in enumerate(layer.blobs):     # the same weights; running statistics to start from
            if first is not None:
                p.data[...] = first[i]
            elif layer.type == "BatchNorm":
                p.data[...] = np.linspace(0.5, 2, p.count).reshape(p.shape) if i < 2 else 3
        first = first or [p.data.copy() for p in layer.blobs]
        results.append(step(layer, bottom, top, dy))
    for got, want in zip(results[0], results[1]):
        for a, b in zip(np.atleast_1d(got) if isinstance(got, np.ndarray) else got,
                        np.atleast_1d(want) if isinstance(want, np.ndarray) else want):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


@pytest.mark.parametrize("in_place", [False, True], ids=["out", "in_place"])
@pytest.mark.parametrize("param", ["", "batch_norm_param { use_global_stats: true }",
                                   "batch_norm_param { moving_average_fraction: 0.9 eps: 0.001 }"])
@pytest.mark.parametrize("shape", [(4, 6, 5, 7), (3, 5), (2, 3, 40)])
def test_batch_norm_blocked_matches_reference(small_blocks, in_place, param, shape):
    compare(f'type: "BatchNorm" {param}', [rand(shape, 1)], in_place)


@pytest.mark.parametrize("in_place", [False, True], ids=["out", "in_place"])
@pytest.mark.parametrize("text, shapes", [
    ('type: "Scale" scale_param { bias_term: true filler { type: "uniform" } '
     'bias_filler { type: "uniform" } }', [(4, 6, 5, 7)]),
    ('type: "Scale" scale_param { filler { type: "uniform" } }', [(4, 6, 5, 7)]),
    ('type: "Scale" scale_param { axis: 0 num_axes: 2 bias_term: true }', [(3, 4, 9)]),
    ('type: "Scale" scale_param { bias_term: true }', [(4, 6, 5), (6,)]),
    ('type: "Scale"', [(4, 6, 5, 2), (6, 5)]),
])
def test_scale_blocked_matches_reference(small_blocks, in_place, text, shapes):
    compare(text, [rand(s, i + 1) for i, s in enumerate(shapes)], in_place)


@pytest.mark.parametrize("in_place", [False, True], ids=["out", "in_place"])
@pytest.mark.parametrize("text", ['type: "BatchNorm"', 'type: "BatchNorm" batch_norm_param { use_global_stats: true }',
                                  'type: "Scale" scale_param { bias_term: true filler { type: "uniform" } }'])
def test_blocked_gradients_by_finite_differences(small_blocks, in_place, text):
    layer, bottom, top = setup(text, [rand((3, 4, 3, 5), 5, np.float64)], in_place, dtype=np.float64)
    assert layer.blocked
    if layer.type == "BatchNorm":
        layer.blobs[2].data[...] = 2
        layer.blobs[1].data[...] = 3
    if in_place:    # the checker perturbs the bottom and reruns forward: check against a copy
        x = bottom[0].data.copy()
        out_layer, out_bottom, out_top = setup(text, [x], False, dtype=np.float64)
        for a, b in zip(out_layer.blobs, layer.blobs):
            a.data[...] = b.data
        out_layer.forward(out_bottom, out_top)
        layer.forward(bottom, top)
        np.testing.assert_allclose(top[0].data, out_top[0].data, rtol=1e-12, atol=1e-12)
        layer, bottom, top = out_layer, out_bottom, out_top
    if "use_global_stats" in text:    # its blobs are statistics: the bottom's gradient alone
        dy = rand(top[0].shape, 3, np.float64)
        x = bottom[0].data.reshape(-1)
        numeric = np.empty(x.size)
        for k in range(x.size):
            values = []
            for delta in (1e-6, -1e-6):
                x[k] += delta
                layer.forward(bottom, top)
                values.append(np.sum(top[0].data * dy))
                x[k] -= delta
            numeric[k] = (values[0] - values[1]) / 2e-6
        layer.forward(bottom, top)
        top[0].diff[...] = dy
        layer.backward(top, [True], bottom)
        np.testing.assert_allclose(bottom[0].diff.reshape(-1), numeric, rtol=1e-6, atol=1e-8)
    else:
        check_gradient(layer, bottom, top)


def test_batch_norm_blocked_float32_matches_float64(small_blocks):
    """The blocked float32 forward and backward stay within float32 rounding of float64."""
    x, dy = rand((4, 6, 5, 7), 7), rand((4, 6, 5, 7), 8)
    outs = []
    for dtype in (np.float32, np.float64):
        layer, bottom, top = setup('type: "BatchNorm"', [x.astype(dtype)], False, dtype=dtype)
        outs.append(step(layer, bottom, top, dy.astype(dtype), passes=1))
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outs[0][1][0], outs[1][1][0], rtol=1e-4, atol=1e-5)


def test_eltwise_sum_of_three_in_one_pass():
    a, b, c = rand((3, 4, 5), 1), rand((3, 4, 5), 2), rand((3, 4, 5), 3)
    layer, bottom, top = make_layer('type: "Eltwise"', [a, b, c], dtype=np.float32)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, (a + b) + c)


def test_engine_name_says_which_passes_ran():
    x = rand((2, 3, 4), 4)
    for text in ('type: "BatchNorm"', 'type: "Scale"'):
        layer, bottom, top = make_layer(text, [x], dtype=np.float32)
        assert layer.engine_name == "NumPy"              # before any forward
        layer.forward(bottom, top)
        assert layer.engine_name == "NumPy, blocked"
        layer.blocked = False
        layer.forward(bottom, top)
        assert layer.engine_name == "NumPy"
