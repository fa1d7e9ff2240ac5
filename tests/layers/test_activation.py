"""ELU, Swish, Clip, AbsVal, BNLL, Exp, Log, Power, Threshold, PReLU: gradients
against finite differences, forward values against their formulas, refusals."""
import numpy as np
import pytest

from firecaffe.core.blob import Blob
from firecaffe.engine.testing import check_gradient, layer_param, make_layer
from firecaffe.errors import FirecaffeError
from firecaffe.ops import create_layer


def away_from_zero(shape, seed=0, low=0.1, high=2.0):
    """Random values with |x| >= low, so finite differences never cross a kink at 0."""
    gen = np.random.default_rng(seed)
    return gen.uniform(low, high, shape) * gen.choice([-1.0, 1.0], shape)


def positive(shape, seed=0):
    return np.random.default_rng(seed).uniform(0.3, 2.0, shape)


def forward(text, x):
    layer, bottom, top = make_layer(text, [x])
    layer.forward(bottom, top)
    return top[0].data


def in_place(text, x):
    param = layer_param(text)
    param.name = "test"
    layer = create_layer(param, dtype=np.float64)
    blob = Blob(x.shape, np.float64)
    blob.data[...] = x
    layer.setup([blob], [blob])
    return layer, [blob]


GRADIENT_CASES = [
    ('type: "ELU"', away_from_zero),
    ('type: "ELU" elu_param { alpha: 0.4 }', away_from_zero),
    ('type: "Swish"', away_from_zero),
    ('type: "Swish" swish_param { beta: 2.5 }', away_from_zero),
    ('type: "Clip" clip_param { min: -0.5 max: 0.8 }', lambda s: away_from_zero(s) * 0.5 + 0.03),
    ('type: "AbsVal"', away_from_zero),
    ('type: "BNLL"', lambda s: away_from_zero(s) * 3),
    ('type: "Exp"', away_from_zero),
    ('type: "Exp" exp_param { base: 2 scale: 0.5 shift: 0.3 }', away_from_zero),
    ('type: "Log"', positive),
    ('type: "Log" log_param { base: 10 scale: 2 shift: 0.5 }', positive),
    ('type: "Power"', away_from_zero),
    ('type: "Power" power_param { power: 2 scale: 0.5 shift: -0.2 }', away_from_zero),
    ('type: "Power" power_param { power: 3 scale: 1.5 }', away_from_zero),
    ('type: "Power" power_param { power: 0.5 scale: 2 shift: 1 }', positive),
    ('type: "Power" power_param { power: 1 scale: -3 shift: 1 }', away_from_zero),
    ('type: "PReLU"', away_from_zero),
    ('type: "PReLU" prelu_param { channel_shared: true filler { type: "constant" value: -0.3 } }',
     away_from_zero),
    ('type: "PReLU" prelu_param { filler { type: "gaussian" std: 0.5 } }', away_from_zero),
]


@pytest.mark.parametrize("text,make", GRADIENT_CASES)
def test_gradient_matches_finite_differences(text, make):
    layer, bottom, top = make_layer(text, [make((2, 3, 2, 2))])
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize("text", ['type: "ELU" elu_param { alpha: 0.7 }', 'type: "Swish"',
                                  'type: "Exp" exp_param { base: 3 }', 'type: "PReLU"',
                                  'type: "PReLU" prelu_param { channel_shared: true }'])
def test_in_place_matches_out_of_place(text):
    x = away_from_zero((2, 3, 4), seed=4)
    dy = np.random.default_rng(5).standard_normal(x.shape)
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
    for a, b in zip(layer.blobs, layer2.blobs):
        np.testing.assert_allclose(a.diff, b.diff)


def test_forward_values_follow_caffe_formulas():
    x = np.array([[-3.0, -0.5, 0.0, 0.25, 2.0]])
    np.testing.assert_allclose(forward('type: "ELU" elu_param { alpha: 0.5 }', x),
                               np.where(x > 0, x, 0.5 * np.expm1(x)))
    np.testing.assert_allclose(forward('type: "Swish" swish_param { beta: 2 }', x), x / (1 + np.exp(-2 * x)))
    np.testing.assert_allclose(forward('type: "Clip" clip_param { min: -1 max: 1 }', x), np.clip(x, -1, 1))
    np.testing.assert_allclose(forward('type: "AbsVal"', x), np.abs(x))
    np.testing.assert_allclose(forward('type: "BNLL"', x * 100), np.logaddexp(0, x * 100))
    np.testing.assert_allclose(forward('type: "Exp" exp_param { base: 2 scale: 3 shift: 1 }', x),
                               2.0 ** (1 + 3 * x))
    np.testing.assert_allclose(forward('type: "Log" log_param { base: 2 scale: 3 shift: 10 }', x),
                               np.log2(10 + 3 * x))
    np.testing.assert_allclose(forward('type: "Power" power_param { power: 3 scale: 2 shift: 1 }', x),
                               (1 + 2 * x) ** 3)
    np.testing.assert_array_equal(forward('type: "Threshold" threshold_param { threshold: 0.25 }', x),
                                  [[0, 0, 0, 0, 1]])


def test_power_with_zero_scale_is_a_constant_with_zero_gradient():
    layer, bottom, top = make_layer('type: "Power" power_param { power: 2 scale: 0 shift: 3 }',
                                    [away_from_zero((2, 3))])
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, 9.0)
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, 0.0)


def test_prelu_blob_shapes_and_default_slope():
    layer, _, _ = make_layer('type: "PReLU"', [np.zeros((2, 5, 3))])
    assert layer.blobs[0].shape == (5,)
    np.testing.assert_array_equal(layer.blobs[0].data, 0.25)
    layer, _, _ = make_layer('type: "PReLU" prelu_param { channel_shared: true }', [np.zeros((2, 5))])
    assert layer.blobs[0].shape == ()      # Caffe's channel_shared slope is a 0-D blob


def test_prelu_refuses_one_axis_input():
    with pytest.raises(FirecaffeError, match="at least 2 axes"):
        make_layer('type: "PReLU"', [np.zeros(4)])


def test_absval_refuses_in_place():
    with pytest.raises(FirecaffeError, match="in place"):
        in_place('type: "AbsVal"', np.ones((2, 2)))


@pytest.mark.parametrize("text", ['type: "Log" log_param { base: -2 }', 'type: "Log" log_param { base: 1 }',
                                  'type: "Exp" exp_param { base: 0 }', 'type: "Clip" clip_param { min: 0 }'])
def test_bad_parameters_are_refused(text):
    with pytest.raises(FirecaffeError, match="layer 'test'"):
        make_layer(text, [np.ones((2, 2))])


def test_threshold_has_no_backward_and_refuses_force_backward():
    layer, bottom, top = make_layer('type: "Threshold"', [np.ones((2, 2))])
    assert not layer.allow_force_backward(0)
    layer.backward(top, [False], bottom)          # nothing asked, nothing done
    with pytest.raises(FirecaffeError, match="no backward"):
        layer.backward(top, [True], bottom)
