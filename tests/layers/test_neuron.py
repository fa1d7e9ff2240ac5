import numpy as np
import pytest

from firecaffe.core import backend
from firecaffe.core.blob import Blob
from firecaffe.ops import create_layer
from firecaffe.engine.testing import check_gradient, layer_param, make_layer


def away_from_zero(shape, seed=0):
    """Random values with |x| >= 0.1, so finite differences never cross a kink."""
    gen = np.random.default_rng(seed)
    x = gen.uniform(0.1, 2.0, shape)
    return x * gen.choice([-1.0, 1.0], shape)


def in_place(text, x, phase="TRAIN"):
    """Set up the layer with its top being its bottom blob."""
    param = layer_param(text)
    param.name = "test"
    layer = create_layer(param, phase=phase, dtype=np.float64)
    blob = Blob(x.shape, np.float64)
    blob.data[...] = x
    layer.setup([blob], [blob])
    return layer, [blob]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_non_finite_values_as_caffe(dtype):
    """Real Caffe (BVLC 9b891540, shared/caffe-oracle) gives [nan, inf, nan, 0] for [-inf, inf, nan, -1]
    with slope 0 (max(x, 0) + 0 * min(x, 0), and 0 * -inf is NaN), and [-inf, inf, nan, -0.25] with 0.25."""
    x = np.array([[-np.inf, np.inf, np.nan, -1.0]], dtype)
    for slope, expected in ((0, [[np.nan, np.inf, np.nan, 0.0]]), (0.25, [[-np.inf, np.inf, np.nan, -0.25]])):
        layer, bottom, top = make_layer(f'type: "ReLU" relu_param {{ negative_slope: {slope} }}', [x.copy()],
                                        dtype=dtype)
        layer.forward(bottom, top)
        np.testing.assert_array_equal(top[0].data, expected)


def test_relu_forward_with_negative_slope():
    layer, bottom, top = make_layer('type: "ReLU" relu_param { negative_slope: 0.25 }',
                                    [np.array([[-2.0, -0.5, 0.0, 3.0]])])
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, [[-0.5, -0.125, 0.0, 3.0]])


@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_relu_gradient(slope):
    layer, bottom, top = make_layer(f'type: "ReLU" relu_param {{ negative_slope: {slope} }}',
                                    [away_from_zero((2, 3, 2, 2))])
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize("kind", ["Sigmoid", "TanH"])
def test_sigmoid_tanh_gradient(kind):
    layer, bottom, top = make_layer(f'type: "{kind}"', [away_from_zero((2, 3, 4), seed=1) * 2])
    check_gradient(layer, bottom, top)


def test_sigmoid_and_tanh_forward_match_formulas():
    x = np.array([-40.0, -1.0, 0.0, 2.0, 40.0])
    layer, bottom, top = make_layer('type: "Sigmoid"', [x])
    layer.forward(bottom, top)
    # Computed as Caffe does, 0.5 * tanh(0.5 x) + 0.5: no overflow, absolute accuracy.
    np.testing.assert_allclose(top[0].data, 1 / (1 + np.exp(-x)), rtol=1e-12, atol=1e-15)
    layer, bottom, top = make_layer('type: "TanH"', [x])
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, np.tanh(x), rtol=1e-12)


@pytest.mark.parametrize("text", ['type: "ReLU"', 'type: "ReLU" relu_param { negative_slope: 0.2 }',
                                  'type: "Sigmoid"', 'type: "TanH"'])
def test_neuron_in_place_matches_out_of_place(text):
    x = away_from_zero((3, 4), seed=2)
    dy = np.random.default_rng(3).standard_normal(x.shape)
    layer, bottom, top = make_layer(text, [x])
    layer.forward(bottom, top)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)

    layer2, same = in_place(text, x)
    layer2.forward(same, same)
    np.testing.assert_allclose(same[0].data, top[0].data)
    same[0].diff[...] = dy
    layer2.backward(same, [True], same)
    np.testing.assert_allclose(same[0].diff, bottom[0].diff)


def test_dropout_is_identity_in_test_phase():
    x = away_from_zero((4, 5))
    layer, bottom, top = make_layer('type: "Dropout" dropout_param { dropout_ratio: 0.7 }',
                                    [x], phase="TEST")
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, x)
    top[0].diff[...] = 2.0
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, 2.0)


def test_dropout_train_scales_kept_units_and_drops_the_ratio():
    backend.seed(5)
    ratio = 0.3
    x = np.ones((200, 100))
    layer, bottom, top = make_layer(f'type: "Dropout" dropout_param {{ dropout_ratio: {ratio} }}',
                                    [x])
    layer.forward(bottom, top)
    y = top[0].data
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / (1 - ratio))
    # 20000 Bernoulli draws: the dropped fraction is within 5 sigma of the ratio.
    sigma = np.sqrt(ratio * (1 - ratio) / x.size)
    assert abs((1 - kept.mean()) - ratio) < 5 * sigma
    assert abs(y.mean() - 1.0) < 0.05            # expectation preserved
    top[0].diff[...] = 1.0
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, y)  # same mask, same scale


def test_dropout_gradient_with_fixed_mask():
    backend.seed(1)
    layer, bottom, top = make_layer('type: "Dropout"', [away_from_zero((3, 4))])
    layer.forward(bottom, top)
    mask = layer.mask.copy()
    # Re-drawing the mask on each forward would break finite differences; freeze it.
    layer.forward_cpu = lambda b, t: t[0].data.__setitem__(Ellipsis, b[0].data * mask)
    check_gradient(layer, bottom, top)
    assert set(np.unique(mask)) <= {0.0, 2.0}


def test_dropout_in_place_keeps_mask_for_backward():
    x = away_from_zero((6, 7))
    backend.seed(9)
    layer, bottom, top = make_layer('type: "Dropout"', [x])
    layer.forward(bottom, top)
    top[0].diff[...] = 3.0
    layer.backward(top, [True], bottom)

    backend.seed(9)
    layer2, same = in_place('type: "Dropout"', x)
    layer2.forward(same, same)
    np.testing.assert_array_equal(same[0].data, top[0].data)
    same[0].diff[...] = 3.0
    layer2.backward(same, [True], same)
    np.testing.assert_array_equal(same[0].diff, bottom[0].diff)


def test_dropout_rejects_ratio_of_one():
    from firecaffe.errors import FirecaffeError
    with pytest.raises(FirecaffeError, match="'test'.*dropout_ratio"):
        make_layer('type: "Dropout" dropout_param { dropout_ratio: 1.0 }', [np.ones(3)])


def _relu_pair(slope, x, dy, inplace, dtype):
    param = layer_param(f'type: "ReLU" relu_param {{ negative_slope: {slope} }}')
    param.name = "test"
    layer = create_layer(param, dtype=dtype)
    bottom = Blob(x.shape, dtype)
    bottom.data[...] = x
    top = bottom if inplace else Blob((), dtype)
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    y = top.data.copy()
    top.diff[...] = dy
    layer.backward([top], [True], [bottom])
    return y, bottom.diff.copy(), bottom, top


@pytest.mark.parametrize("slope", [0.0, 0.25])
@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("chunk", [None, 1000])
@pytest.mark.parametrize("nonfinite", [True, False])
@pytest.mark.filterwarnings("ignore:invalid value")
def test_relu_large_threaded_exact(monkeypatch, slope, inplace, chunk, nonfinite):
    """Big enough for the chunked, threaded NumPy path (odd size, chunk edges
    inside rows): exactly the reference formulas, in place or not, with
    zeros, -0.0, NaN and inf in x and dy (``nonfinite``; without them every piece of
    the forward takes np.maximum's path, with them most take the product's)."""
    from firecaffe.ops import _threads
    if chunk:
        monkeypatch.setattr(_threads, "CHUNK", chunk)
    monkeypatch.setattr(_threads, "ELTWISE_THREADS", 2)
    gen = np.random.default_rng(4)
    shape = (3, 7, 101, 131)
    x = gen.standard_normal(shape).astype(np.float32)
    dy = gen.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    flat[::97] = 0.0
    flat[1::97] = -0.0
    if nonfinite:
        flat[2::997] = np.nan
        flat[3::991] = -np.inf
        dy.reshape(-1)[5::89] = np.inf
    s = np.float32(slope)
    with np.errstate(invalid="ignore"):
        # slope 0: Caffe's max(x, 0) + 0 * min(x, 0) (-inf gives NaN), with +0 for every x <= 0
        y_ref = np.where(x > 0, x, x * s) if slope else x * (x > 0) + np.float32(0)
        if not slope:
            np.testing.assert_array_equal(y_ref, np.maximum(x, 0) + 0 * np.minimum(x, 0))
        # in place the sign comes from y: the same as x's for slope >= 0
        dx_ref = np.where(x > 0, dy, dy * s) if slope else dy * (x > 0)
        y, dx, bottom, top = _relu_pair(slope, x, dy, inplace, np.float32)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(np.signbit(y), np.signbit(y_ref))
    np.testing.assert_array_equal(dx, dx_ref)
    if not inplace:
        np.testing.assert_array_equal(bottom.data, x)      # input untouched
        np.testing.assert_array_equal(top.diff, dy)        # top diff untouched


def test_relu_reuses_blob_arrays():
    """Forward and backward write into the blobs' own arrays (no rebinding)."""
    x = away_from_zero((4, 5, 6))
    layer, bottom, top = make_layer('type: "ReLU"', [x])
    data, diff = top[0].data, bottom[0].diff
    layer.forward(bottom, top)
    top[0].diff[...] = 1.0
    layer.backward(top, [True], bottom)
    assert top[0].data is data and bottom[0].diff is diff
    np.testing.assert_array_equal(diff, (x > 0).astype(float))
