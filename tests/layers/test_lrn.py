import numpy as np
import pytest

from firecaffe.errors import FirecaffeError
from firecaffe.engine.testing import check_gradient, make_layer

from tests import _required


def lrn_text(params=""):
    return f'type: "LRN" lrn_param {{ {params} }}'


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def run(params, x):
    layer, bottom, top = make_layer(lrn_text(params), [x])
    layer.forward(bottom, top)
    return top[0].data


def test_lrn_across_channels_hand_example():
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1, 1)
    y = run("local_size: 3 alpha: 3 beta: 0.5 k: 2", x)
    # scale_c = 2 + 3/3 * (sum of squares of channels c-1..c+1)
    scale = 2 + np.array([1 + 4, 1 + 4 + 9, 4 + 9 + 16, 9 + 16])
    np.testing.assert_allclose(y.ravel(), x.ravel() / np.sqrt(scale))


def test_lrn_across_channels_matches_torch():
    torch = _required.torch()
    x = rand(2, 7, 3, 4)
    y = run("local_size: 5 alpha: 0.0001 beta: 0.75 k: 2", x)
    expect = torch.nn.functional.local_response_norm(torch.tensor(x), 5, alpha=1e-4, beta=0.75, k=2.0)
    # Caffe stores alpha as float32; torch is given the same rounded value through 1e-4's float
    np.testing.assert_allclose(y, expect.numpy(), rtol=1e-7)


def test_lrn_defaults_are_caffes():
    layer, _, _ = make_layer(lrn_text(), [rand(1, 3, 2, 2)])
    assert (layer.size, layer.alpha, layer.beta, layer.k) == (5, 1.0, 0.75, 1.0)


def test_lrn_within_channel_hand_example():
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    y = run("local_size: 3 alpha: 2 beta: 1 k: 7 norm_region: WITHIN_CHANNEL", x)
    sq = np.pad(x[0, 0] ** 2, 1)
    box = np.array([[sq[i:i + 3, j:j + 3].sum() for j in range(3)] for i in range(3)])
    # Caffe: average pooling divides by 9 everywhere (padded window); the shift is 1, k unused
    np.testing.assert_allclose(y[0, 0], x[0, 0] / (1 + 2 * box / 9))


@pytest.mark.parametrize("params", [
    "local_size: 3 alpha: 0.7 beta: 0.75 k: 1.5",
    "local_size: 5 alpha: 2 beta: 0.6 k: 1",
    "local_size: 9 alpha: 1 beta: 0.75",                # window wider than the channels
    "local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL",
    "local_size: 5 alpha: 3 beta: 0.4 norm_region: WITHIN_CHANNEL",
])
def test_lrn_gradient(params):
    layer, bottom, top = make_layer(lrn_text(params), [rand(2, 4, 3, 4)])
    check_gradient(layer, bottom, top)


def test_lrn_keeps_float32():
    layer, bottom, top = make_layer(lrn_text(), [rand(1, 3, 2, 2)], dtype=np.float32)
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    assert top[0].data.dtype == bottom[0].diff.dtype == np.float32


@pytest.mark.parametrize("params, shape, words", [
    ("local_size: 4", (1, 3, 2, 2), "odd"),
    ("", (3, 2, 2), "4 axes"),
])
def test_lrn_rejects_bad_input(params, shape, words):
    with pytest.raises(FirecaffeError, match=words):
        make_layer(lrn_text(params), [np.zeros(shape)])
