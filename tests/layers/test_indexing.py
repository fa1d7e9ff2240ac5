"""Embed, BatchReindex, Filter, ArgMax, Parameter: gradients against finite
differences, values, and index bottoms that take no gradient."""
import numpy as np
import pytest

from firecaffe.engine.testing import check_gradient, make_layer
from firecaffe.errors import DataError, FirecaffeError

EMBED = ('type: "Embed" embed_param { num_output: 3 input_dim: 5 weight_filler { type: "gaussian" std: 1 } '
         'bias_filler { type: "gaussian" std: 1 } }')


def test_embed_looks_up_rows_and_adds_bias():
    index = np.array([[4.0, 0.0], [2.0, 4.0]])
    layer, bottom, top = make_layer(EMBED, [index])
    assert top[0].shape == (2, 2, 3)
    assert [b.shape for b in layer.blobs] == [(5, 3), (3,)]
    layer.forward(bottom, top)
    w, b = layer.blobs[0].data, layer.blobs[1].data
    np.testing.assert_allclose(top[0].data, w[index.astype(int)] + b)


@pytest.mark.parametrize("bias", ["true", "false"])
def test_embed_parameter_gradients_add_repeated_indices(bias):
    text = EMBED.replace("input_dim: 5", f"input_dim: 5 bias_term: {bias}")
    layer, bottom, top = make_layer(text, [np.array([[4.0, 0.0, 4.0], [2.0, 4.0, 1.0]])])
    check_gradient(layer, bottom, top, check_bottom=[])


def test_embed_refuses_index_gradient_and_bad_index():
    layer, bottom, top = make_layer(EMBED, [np.array([1.0, 5.0])])
    assert not layer.allow_force_backward(0)
    with pytest.raises(DataError, match="index 5 at position 1 is outside"):
        layer.forward(bottom, top)
    bottom[0].data[1] = 3
    layer.forward(bottom, top)
    with pytest.raises(FirecaffeError, match="cannot backpropagate to bottom 0"):
        layer.backward(top, [True], bottom)


def test_batch_reindex_gathers_and_scatters():
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    index = np.array([3.0, 0.0, 3.0, 1.0, 3.0])
    layer, bottom, top = make_layer('type: "BatchReindex"', [x, index])
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, x[[3, 0, 3, 1, 3]])
    check_gradient(layer, bottom, top, check_bottom=[0])
    assert layer.allow_force_backward(0) and not layer.allow_force_backward(1)
    with pytest.raises(FirecaffeError, match="cannot backpropagate to bottom 1"):
        layer.backward(top, [True, True], bottom)
    bottom[1].data[2] = 4
    with pytest.raises(DataError, match="outside"):
        layer.forward(bottom, top)


def test_filter_keeps_selected_rows_after_forward_and_all_at_setup():
    a = np.random.default_rng(1).standard_normal((5, 3))
    b = np.random.default_rng(2).standard_normal((5, 2, 2))
    selector = np.array([0.0, 1.0, 0.0, 2.0, 1.0]).reshape(5, 1)
    layer, bottom, top = make_layer('type: "Filter"', [a, b, selector], num_top=2)
    assert top[0].shape == (5, 3) and top[1].shape == (5, 2, 2)      # Caffe: the full batch at setup
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, a[[1, 3, 4]])
    np.testing.assert_array_equal(top[1].data, b[[1, 3, 4]])
    check_gradient(layer, bottom, top, check_bottom=[0, 1])
    assert [layer.allow_force_backward(i) for i in range(3)] == [True, True, False]
    with pytest.raises(FirecaffeError, match="cannot backpropagate to bottom 2"):
        layer.backward(top, [True, True, True], bottom)


def test_filter_checks_tops_and_selector_shape():
    with pytest.raises(FirecaffeError, match="one top per filtered bottom"):
        make_layer('type: "Filter"', [np.ones((2, 3)), np.ones(2)], num_top=2)
    with pytest.raises(FirecaffeError, match="selector"):
        make_layer('type: "Filter"', [np.ones((2, 3)), np.ones((2, 2))])


def test_argmax_over_each_sample_with_values_and_ties_to_the_larger_index():
    x = np.array([[[1.0, 5.0], [5.0, 2.0]], [[0.0, -1.0], [3.0, 3.0]]])      # (2, 2, 2)
    layer, bottom, top = make_layer('type: "ArgMax" argmax_param { top_k: 3 out_max_val: true }', [x])
    assert top[0].shape == (2, 2, 3)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data[0], [[2, 1, 3], [5, 5, 2]])
    np.testing.assert_array_equal(top[0].data[1], [[3, 2, 0], [3, 3, 0]])
    layer, bottom, top = make_layer('type: "ArgMax"', [x.reshape(2, 4, 1, 1)])
    assert top[0].shape == (2, 1, 1, 1)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data.reshape(-1), [2, 3])


@pytest.mark.parametrize("out_max_val", ["false", "true"])
def test_argmax_along_an_axis(out_max_val):
    x = np.random.default_rng(3).standard_normal((2, 3, 4))
    layer, bottom, top = make_layer(f'type: "ArgMax" argmax_param {{ axis: -2 top_k: 2 out_max_val: {out_max_val} }}',
                                    [x])
    assert top[0].shape == (2, 2, 4)
    layer.forward(bottom, top)
    order = np.argsort(-x, axis=1)[:, :2, :]
    expected = np.take_along_axis(x, order, axis=1) if out_max_val == "true" else order
    np.testing.assert_array_equal(top[0].data, expected)


def test_argmax_has_no_backward_and_checks_top_k():
    layer, bottom, top = make_layer('type: "ArgMax"', [np.ones((2, 3))])
    assert not layer.allow_force_backward(0)
    with pytest.raises(FirecaffeError, match="no backward"):
        layer.backward(top, [True], bottom)
    with pytest.raises(FirecaffeError, match="top_k"):
        make_layer('type: "ArgMax" argmax_param { top_k: 4 }', [np.ones((2, 3))])


def test_parameter_top_is_the_blob():
    layer, bottom, top = make_layer('type: "Parameter" parameter_param { shape { dim: 2 dim: 3 } }', [])
    assert layer.blobs[0].shape == (2, 3) and top[0].shape == (2, 3)
    layer.blobs[0].data[...] = 7
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, 7)
    top[0].diff[...] = 2                  # what the next layer's backward writes
    np.testing.assert_array_equal(layer.blobs[0].diff, 2)
