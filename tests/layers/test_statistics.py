"""Reduction and MVN: gradients against finite differences, values, shapes."""
import numpy as np
import pytest

from firecaffe.engine.testing import check_gradient, make_layer
from firecaffe.errors import FirecaffeError


def data(shape, seed=0):
    gen = np.random.default_rng(seed)
    return gen.uniform(0.2, 2.0, shape) * gen.choice([-1.0, 1.0], shape)


@pytest.mark.parametrize("op", ["SUM", "ASUM", "SUMSQ", "MEAN"])
@pytest.mark.parametrize("axis,coeff", [(0, 1.0), (1, -0.5), (-1, 2.0)])
def test_reduction_values_and_gradient(op, axis, coeff):
    x = data((2, 3, 4))
    layer, bottom, top = make_layer(
        f'type: "Reduction" reduction_param {{ operation: {op} axis: {axis} coeff: {coeff} }}', [x])
    first = axis % 3
    assert top[0].shape == x.shape[:first]               # 0-D for axis 0
    layer.forward(bottom, top)
    flat = x.reshape(int(np.prod(x.shape[:first])), -1)
    expected = {"SUM": flat.sum(1), "ASUM": np.abs(flat).sum(1), "SUMSQ": (flat ** 2).sum(1),
                "MEAN": flat.mean(1)}[op] * coeff
    np.testing.assert_allclose(top[0].data.reshape(-1), expected)
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize("param", ['', 'mvn_param { across_channels: true }',
                                   'mvn_param { normalize_variance: false }',
                                   'mvn_param { normalize_variance: false across_channels: true }'])
def test_mvn_gradient(param):
    layer, bottom, top = make_layer(f'type: "MVN" {param}', [data((2, 3, 2, 3))])
    check_gradient(layer, bottom, top)


def test_mvn_normalizes_each_channel_of_each_sample():
    x = data((2, 3, 4, 5))
    layer, bottom, top = make_layer('type: "MVN" mvn_param { eps: 0.001 }', [x])
    layer.forward(bottom, top)
    centred = x - x.mean(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(top[0].data, centred / (x.std(axis=(2, 3), keepdims=True) + 0.001))


def test_mvn_top_is_four_dimensional_and_input_at_most_four():
    layer, bottom, top = make_layer('type: "MVN" mvn_param { across_channels: true }', [data((3, 5))])
    assert top[0].shape == (3, 5, 1, 1)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data.reshape(3, 5).std(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(FirecaffeError, match="at most 4 axes"):
        make_layer('type: "MVN"', [data((1, 2, 2, 2, 2))])
