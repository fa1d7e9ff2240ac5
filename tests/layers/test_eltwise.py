import numpy as np
import pytest

from firecaffe.errors import FirecaffeError
from firecaffe.engine.testing import check_gradient, make_layer


def rands(n, shape=(2, 3, 2), seed=0):
    gen = np.random.default_rng(seed)
    return [gen.uniform(0.5, 1.5, shape) * gen.choice([-1.0, 1.0], shape) for _ in range(n)]


def test_eltwise_sum_with_coeffs_forward_and_gradient():
    xs = rands(3)
    layer, bottom, top = make_layer(
        'type: "Eltwise" eltwise_param { operation: SUM coeff: 1 coeff: -0.5 coeff: 2 }', xs)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, xs[0] - 0.5 * xs[1] + 2 * xs[2])
    check_gradient(layer, bottom, top)


def test_eltwise_sum_is_default():
    xs = rands(2)
    layer, bottom, top = make_layer('type: "Eltwise"', xs)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, xs[0] + xs[1])
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize("stable", ["true", "false"])
def test_eltwise_prod_forward_and_gradient(stable):
    xs = rands(3, seed=1)
    layer, bottom, top = make_layer(
        f'type: "Eltwise" eltwise_param {{ operation: PROD stable_prod_grad: {stable} }}', xs)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, xs[0] * xs[1] * xs[2])
    check_gradient(layer, bottom, top)


def test_eltwise_stable_prod_grad_survives_zero_input():
    xs = [np.array([0.0, 2.0]), np.array([3.0, 4.0])]
    layer, bottom, top = make_layer('type: "Eltwise" eltwise_param { operation: PROD }', xs)
    layer.forward(bottom, top)
    top[0].diff[...] = 1.0
    layer.backward(top, [True, True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, [3.0, 4.0])
    np.testing.assert_array_equal(bottom[1].diff, [0.0, 2.0])


def test_eltwise_max_forward_and_gradient():
    xs = rands(3, seed=2)
    layer, bottom, top = make_layer('type: "Eltwise" eltwise_param { operation: MAX }', xs)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, np.maximum.reduce(xs))
    np.testing.assert_array_equal(layer.max_idx, np.argmax(np.stack(xs), axis=0))
    check_gradient(layer, bottom, top)


def test_eltwise_max_breaks_ties_as_caffe():
    # bottoms 0 and 1 tied -> 1 wins; a later bottom tying the max does not win.
    xs = [np.array([1.0, 5.0]), np.array([1.0, 2.0]), np.array([1.0, 5.0])]
    layer, bottom, top = make_layer('type: "Eltwise" eltwise_param { operation: MAX }', xs)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(layer.max_idx, [1, 0])
    top[0].diff[...] = 1.0
    layer.backward(top, [True] * 3, bottom)
    np.testing.assert_array_equal([b.diff for b in bottom], [[0, 1], [1, 0], [0, 0]])


def test_eltwise_shape_mismatch_names_both_shapes():
    with pytest.raises(FirecaffeError, match=r"layer 'test' \(Eltwise\).*\(2, 4\).*\(2, 3\)"):
        make_layer('type: "Eltwise"', [np.zeros((2, 3)), np.zeros((2, 4))])


def test_eltwise_coeff_errors():
    with pytest.raises(FirecaffeError, match="one coeff per bottom"):
        make_layer('type: "Eltwise" eltwise_param { coeff: 1 }', rands(2))
    with pytest.raises(FirecaffeError, match="only allowed with operation SUM"):
        make_layer('type: "Eltwise" eltwise_param { operation: PROD coeff: 1 coeff: 2 }', rands(2))


def test_eltwise_needs_two_bottoms():
    with pytest.raises(FirecaffeError, match="at least 2 bottom"):
        make_layer('type: "Eltwise"', rands(1))
