import numpy as np
import pytest

from firecaffe.errors import FirecaffeError
from firecaffe.engine.testing import check_gradient, make_layer

from tests import _required

FILLERS = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "uniform" min: -1 max: 1 }'


def ip(extra, x):
    return make_layer(f'type: "InnerProduct" inner_product_param {{ {extra} {FILLERS} }}', [x])


def test_inner_product_shapes_and_forward():
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 2))
    layer, bottom, top = ip("num_output: 4", x)
    assert layer.blobs[0].shape == (4, 12) and layer.blobs[1].shape == (4,)
    assert top[0].shape == (2, 4)
    layer.forward(bottom, top)
    w, b = layer.blobs[0].data, layer.blobs[1].data
    np.testing.assert_allclose(top[0].data, x.reshape(2, 12) @ w.T + b)


def test_inner_product_axis_2_keeps_leading_axes():
    x = np.random.default_rng(1).standard_normal((2, 3, 4))
    layer, bottom, top = ip("num_output: 5 axis: 2", x)
    assert top[0].shape == (2, 3, 5)
    assert layer.blobs[0].shape == (5, 4)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, x @ layer.blobs[0].data.T + layer.blobs[1].data)


def test_inner_product_transpose_stores_k_by_n():
    x = np.random.default_rng(2).standard_normal((3, 4))
    layer, bottom, top = ip("num_output: 2 transpose: true", x)
    assert layer.blobs[0].shape == (4, 2)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, x @ layer.blobs[0].data + layer.blobs[1].data)


@pytest.mark.parametrize("extra, shape", [
    ("num_output: 3", (2, 2, 3)),
    ("num_output: 3 axis: 2", (2, 3, 2)),
    ("num_output: 3 transpose: true", (3, 4)),
    ("num_output: 2 axis: -1 transpose: true", (2, 2, 3)),
    ("num_output: 3 bias_term: false", (2, 4)),
])
def test_inner_product_gradient(extra, shape):
    x = np.random.default_rng(3).standard_normal(shape)
    layer, bottom, top = ip(extra, x)
    check_gradient(layer, bottom, top)


def test_inner_product_accumulates_param_diffs():
    x = np.random.default_rng(4).standard_normal((2, 3))
    layer, bottom, top = ip("num_output: 2", x)
    layer.forward(bottom, top)
    top[0].diff[...] = 1.0
    layer.backward(top, [True], bottom)
    once = [p.diff.copy() for p in layer.blobs]
    layer.backward(top, [True], bottom)
    for p, d in zip(layer.blobs, once):
        np.testing.assert_allclose(p.diff, 2 * d)


def test_inner_product_matches_torch_linear():
    torch = _required.torch()
    x = np.random.default_rng(5).standard_normal((4, 6))
    layer, bottom, top = ip("num_output: 3", x)
    layer.forward(bottom, top)
    ref = torch.nn.functional.linear(torch.from_numpy(x), torch.from_numpy(layer.blobs[0].data.copy()),
                                     torch.from_numpy(layer.blobs[1].data.copy()))
    np.testing.assert_allclose(top[0].data, ref.numpy(), rtol=1e-12)


def test_inner_product_flops():
    layer, bottom, top = ip("num_output: 5", np.zeros((2, 3, 4)))
    assert layer.flops(bottom, top) == 2 * 2 * 12 * 5 + 2 * 5


def test_inner_product_rejects_changed_input_size():
    layer, bottom, top = ip("num_output: 5", np.zeros((2, 3)))
    bottom[0].reshape((2, 4))
    with pytest.raises(FirecaffeError, match=r"layer 'test'.*\(2, 4\).*\(5, 3\)"):
        layer.reshape(bottom, top)


def test_inner_product_needs_num_output():
    with pytest.raises(FirecaffeError, match="num_output"):
        make_layer('type: "InnerProduct"', [np.zeros((2, 3))])
