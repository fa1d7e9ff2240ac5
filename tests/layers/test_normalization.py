import numpy as np
import pytest

from firecaffe.core.blob import Blob
from firecaffe.errors import FirecaffeError
from firecaffe.ops import create_layer
from firecaffe.engine.testing import check_gradient, layer_param, make_layer

from tests import _required


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def in_place(text, arrays, phase="TRAIN"):
    """The layer set up with top[0] being bottom[0] (same Blob)."""
    param = layer_param(text)
    param.name = "test"
    layer = create_layer(param, phase=phase, dtype=np.float64)
    fresh = []
    for i, a in enumerate(arrays):
        blob = Blob(a.shape, np.float64, name=f"b{i}")
        blob.data[...] = a
        fresh.append(blob)
    layer.setup(fresh, [fresh[0]])
    return layer, fresh


def run(layer, bottom, top, dy):
    layer.forward(bottom, top)
    out = top[0].data.copy()
    top[0].diff[...] = dy
    for p in layer.blobs:
        p.diff[...] = 0
    layer.backward(top, [True] * len(bottom), bottom)
    return out, [b.diff.copy() for b in bottom], [p.diff.copy() for p in layer.blobs]


def bottom_gradient_by_differences(layer, bottom, top, dy, eps=1e-6):
    x = bottom[0].data.reshape(-1)
    numeric = np.empty(x.size)
    for k in range(x.size):
        orig = x[k]
        x[k] = orig + eps
        layer.forward(bottom, top)
        plus = np.sum(top[0].data * dy)
        x[k] = orig - eps
        layer.forward(bottom, top)
        minus = np.sum(top[0].data * dy)
        x[k] = orig
        numeric[k] = (plus - minus) / (2 * eps)
    return numeric.reshape(bottom[0].shape)


# --- BatchNorm -------------------------------------------------------------

@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 2, 3)])
def test_batch_norm_train_forward_and_gradient(shape):
    x = rand(*shape) * 2 + 1
    layer, bottom, top = make_layer('type: "BatchNorm"', [x])
    assert not layer.use_global_stats
    layer.forward(bottom, top)
    axes = (0,) + tuple(range(2, len(shape)))
    expect = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + 1e-5)
    np.testing.assert_allclose(top[0].data, expect, rtol=1e-6, atol=1e-6)
    check_gradient(layer, bottom, top)


def test_batch_norm_matches_torch_in_training():
    torch = _required.torch()
    x = rand(4, 3, 2, 2, seed=3)
    layer, bottom, top = make_layer('type: "BatchNorm" batch_norm_param { eps: 0.001 }', [x])
    layer.forward(bottom, top)
    ref = torch.nn.functional.batch_norm(torch.from_numpy(x), None, None, training=True, eps=1e-3)
    np.testing.assert_allclose(top[0].data, ref.numpy(), rtol=1e-5, atol=1e-6)


def test_batch_norm_running_averages_after_two_passes():
    x1, x2 = rand(2, 3, 2, 2, seed=1), rand(2, 3, 2, 2, seed=2) + 3
    maf = 0.5
    layer, bottom, top = make_layer(
        f'type: "BatchNorm" batch_norm_param {{ moving_average_fraction: {maf} }}', [x1])
    mean_sum, var_sum, factor = np.zeros(3), np.zeros(3), 0.0
    m = 2 * 2 * 2
    for x in (x1, x2):
        bottom[0].data[...] = x
        layer.forward(bottom, top)
        factor = factor * maf + 1
        mean_sum = mean_sum * maf + x.mean(axis=(0, 2, 3))
        var_sum = var_sum * maf + x.var(axis=(0, 2, 3)) * m / (m - 1)
    np.testing.assert_allclose(layer.blobs[2].data, [factor])   # 1.5
    np.testing.assert_allclose(layer.blobs[0].data, mean_sum)
    np.testing.assert_allclose(layer.blobs[1].data, var_sum)

    # A TEST-phase layer with these blobs normalizes with mean_sum / factor.
    test, tb, tt = make_layer('type: "BatchNorm"', [x2], phase="TEST")
    assert test.use_global_stats
    for mine, theirs in zip(test.blobs, layer.blobs):
        mine.data[...] = theirs.data
    test.forward(tb, tt)
    expect = ((x2 - (mean_sum / factor)[:, None, None])
              / np.sqrt(var_sum / factor + 1e-5)[:, None, None])
    np.testing.assert_allclose(tt[0].data, expect, rtol=1e-6)
    assert test.blobs[2].data[0] == factor          # global stats: no update


def test_batch_norm_global_stats_with_zero_factor_uses_zero_statistics():
    x = rand(2, 3)
    layer, bottom, top = make_layer('type: "BatchNorm" batch_norm_param { use_global_stats: true }',
                                    [x])
    layer.blobs[0].data[...] = 5.0          # ignored: the factor blob is 0
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, x / np.sqrt(1e-5))


def test_batch_norm_global_stats_gradient_is_scaling():
    x = rand(3, 2, 2, 2, seed=4)
    layer, bottom, top = make_layer('type: "BatchNorm" batch_norm_param { use_global_stats: true }',
                                    [x], phase="TRAIN")
    layer.blobs[0].data[...] = [0.5, -1.0]
    layer.blobs[1].data[...] = [4.0, 0.25]
    layer.blobs[2].data[...] = 2.0
    dy = rand(*x.shape, seed=5)
    layer.forward(bottom, top)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    expect = dy / np.sqrt(np.array([2.0, 0.125]) + 1e-5)[:, None, None]
    np.testing.assert_allclose(bottom[0].diff, expect)
    np.testing.assert_allclose(bottom[0].diff, bottom_gradient_by_differences(layer, bottom, top, dy),
                               rtol=1e-6, atol=1e-8)


def test_batch_norm_statistics_blobs_are_frozen():
    layer, _, _ = make_layer('type: "BatchNorm"', [rand(2, 3)])
    assert [b.shape for b in layer.blobs] == [(3,), (3,), (1,)]
    assert layer.frozen_blobs == [0, 1, 2]


@pytest.mark.parametrize("param", ["", "batch_norm_param { use_global_stats: true }"])
def test_batch_norm_in_place_matches_out_of_place(param):
    x, dy = rand(3, 2, 2, 2, seed=6), rand(3, 2, 2, 2, seed=7)
    text = f'type: "BatchNorm" {param}'
    layer, bottom, top = make_layer(text, [x])
    layer2, same = in_place(text, [x])
    for a, b in zip(layer.blobs, layer2.blobs):
        a.data[...] = b.data[...] = [1.0, 2.0] if a.shape == (2,) else 1.0
    out, diffs, _ = run(layer, bottom, top, dy)
    out2, diffs2, _ = run(layer2, same, same, dy)
    np.testing.assert_allclose(out2, out)
    np.testing.assert_allclose(diffs2[0], diffs[0])
    for a, b in zip(layer.blobs, layer2.blobs):
        np.testing.assert_allclose(a.data, b.data)


def test_batch_norm_rejects_channel_change():
    layer, bottom, top = make_layer('type: "BatchNorm"', [rand(2, 3)])
    bottom[0].reshape((2, 4))
    with pytest.raises(FirecaffeError, match=r"'test'.*\(2, 4\).*4 channels.*3"):
        layer.reshape(bottom, top)


# --- Scale and Bias --------------------------------------------------------

FILL = 'filler { type: "uniform" min: 0.5 max: 1.5 } bias_filler { type: "uniform" min: -1 max: 1 }'


@pytest.mark.parametrize("extra, shape", [
    ("", (2, 3, 2, 2)),
    ("bias_term: true", (2, 3, 2, 2)),
    ("axis: 0 num_axes: 2 bias_term: true", (2, 3, 2)),
    ("num_axes: -1", (2, 3, 2)),
    ("num_axes: 0 bias_term: true", (2, 3)),
    ("axis: -1", (2, 2, 3)),
])
def test_scale_learned_gradient(extra, shape):
    layer, bottom, top = make_layer(f'type: "Scale" scale_param {{ {extra} {FILL} }}', [rand(*shape)])
    check_gradient(layer, bottom, top)


def test_scale_forward_and_blob_shapes():
    x = rand(2, 3, 4)
    layer, bottom, top = make_layer(f'type: "Scale" scale_param {{ bias_term: true {FILL} }}', [x])
    s, b = layer.blobs[0].data, layer.blobs[1].data
    assert s.shape == (3,) and b.shape == (3,)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, x * s[:, None] + b[:, None])


def test_scale_default_filler_is_identity():
    x = rand(2, 3)
    layer, bottom, top = make_layer('type: "Scale"', [x])
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, x)


@pytest.mark.parametrize("extra, shapes", [
    ("", [(2, 3, 2), (3,)]),
    ("axis: 0", [(2, 3, 2), (2, 3)]),
    ("bias_term: true", [(2, 3, 2), (3, 2)]),
])
def test_scale_with_two_bottoms_gradient(extra, shapes):
    xs = [rand(*s, seed=i) for i, s in enumerate(shapes)]
    layer, bottom, top = make_layer(f'type: "Scale" scale_param {{ {extra} {FILL} }}', xs)
    assert len(layer.blobs) == (1 if "bias" in extra else 0)
    if layer.blobs:
        assert layer.blobs[0].shape == shapes[1]
    layer.forward(bottom, top)
    axis = 0 if "axis: 0" in extra else 1
    s = xs[1].reshape(xs[1].shape + (1,) * (len(shapes[0]) - axis - xs[1].ndim))
    bias = layer.blobs[0].data.reshape(s.shape) if layer.blobs else 0
    np.testing.assert_allclose(top[0].data, xs[0] * s + bias)
    check_gradient(layer, bottom, top)


def test_scale_rejects_mismatched_scale_bottom():
    with pytest.raises(FirecaffeError, match=r"'test'.*\(4,\).*\(2, 3, 2\)"):
        make_layer('type: "Scale"', [rand(2, 3, 2), rand(4)])


@pytest.mark.parametrize("extra, nb", [("bias_term: true", 1), ("", 2)])
def test_scale_in_place_matches_out_of_place(extra, nb):
    xs = [rand(2, 3, 2, seed=1), rand(3, seed=2)][:nb]
    dy = rand(2, 3, 2, seed=3)
    text = f'type: "Scale" scale_param {{ {extra} {FILL} }}'
    layer, bottom, top = make_layer(text, xs)
    layer2, same = in_place(text, xs)
    for a, b in zip(layer.blobs, layer2.blobs):
        b.data[...] = a.data
    out, diffs, pdiffs = run(layer, bottom, top, dy)
    out2, diffs2, pdiffs2 = run(layer2, same, same, dy)
    np.testing.assert_allclose(out2, out)
    for a, b in zip(diffs + pdiffs, diffs2 + pdiffs2):
        np.testing.assert_allclose(b, a)


@pytest.mark.parametrize("text, shapes, bias_view", [
    ('type: "Bias" bias_param { filler { type: "gaussian" } }', [(2, 3, 2)], (1, 3, 1)),
    ('type: "Bias" bias_param { axis: 0 num_axes: -1 filler { type: "gaussian" } }', [(2, 3)], (2, 3)),
    ('type: "Bias"', [(2, 3, 2), (3, 2)], (1, 3, 2)),
])
def test_bias_forward_and_gradient(text, shapes, bias_view):
    xs = [rand(*s, seed=i) for i, s in enumerate(shapes)]
    layer, bottom, top = make_layer(text, xs)
    layer.forward(bottom, top)
    b = xs[1] if len(xs) > 1 else layer.blobs[0].data
    np.testing.assert_allclose(top[0].data, xs[0] + b.reshape(bias_view))
    check_gradient(layer, bottom, top)


def test_bias_in_place_matches_out_of_place():
    x, dy = rand(2, 3, 2, seed=1), rand(2, 3, 2, seed=2)
    text = 'type: "Bias" bias_param { filler { type: "gaussian" } }'
    layer, bottom, top = make_layer(text, [x])
    layer2, same = in_place(text, [x])
    layer2.blobs[0].data[...] = layer.blobs[0].data
    out, diffs, pdiffs = run(layer, bottom, top, dy)
    out2, diffs2, pdiffs2 = run(layer2, same, same, dy)
    np.testing.assert_allclose(out2, out)
    for a, b in zip(diffs + pdiffs, diffs2 + pdiffs2):
        np.testing.assert_allclose(b, a)
