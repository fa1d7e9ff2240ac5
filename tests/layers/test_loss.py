import numpy as np
import pytest

from firecaffe.errors import DataError, FirecaffeError, ShapeError
from firecaffe.engine.testing import check_gradient, make_layer as _make_layer

from tests import _required

rng = np.random.default_rng(0)


def make_layer(text, bottoms, **kwargs):
    """Set the layer up and run one forward."""
    layer, bottom, top = _make_layer(text, bottoms, **kwargs)
    layer.forward(bottom, top)
    return layer, bottom, top


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _swl(extra="", axis=None):
    softmax = f"softmax_param {{ axis: {axis} }}" if axis is not None else ""
    return f'type: "SoftmaxWithLoss" {softmax} {extra}'


# --- Softmax -----------------------------------------------------------------

@pytest.mark.parametrize("shape,axis", [((2, 4), 1), ((2, 3, 2, 2), 1), ((2, 3, 4), -1), ((3, 2, 2), 0)])
def test_softmax_gradient(shape, axis):
    x = rng.standard_normal(shape)
    layer, bottom, top = make_layer(f'type: "Softmax" softmax_param {{ axis: {axis} }}', [x])
    np.testing.assert_allclose(top[0].data, _softmax(x, axis), rtol=1e-12)
    check_gradient(layer, bottom, top)


def test_softmax_is_stable_for_large_scores():
    x = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1000.0, -1000.0]])
    layer, bottom, top = make_layer('type: "Softmax"', [x])
    assert np.all(np.isfinite(top[0].data))
    np.testing.assert_allclose(top[0].data[0], _softmax(np.array([1.0, 2.0, 0.0]), 0))
    np.testing.assert_allclose(top[0].data[1], [1 / 3] * 3)


def test_softmax_matches_torch():
    torch = _required.torch()
    x = rng.standard_normal((2, 5, 3))
    _, _, top = make_layer('type: "Softmax"', [x])
    np.testing.assert_allclose(top[0].data, torch.softmax(torch.from_numpy(x), dim=1).numpy(), rtol=1e-12)


# --- SoftmaxWithLoss -------------------------------------------------------------

def test_softmax_loss_forward_hand_example():
    scores = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    labels = np.array([2.0, 0.0])
    layer, bottom, top = make_layer(_swl(), [scores, labels])
    # -(log softmax(1,2,3)[2] + log 1/3) / 2 = (0.40760596 + 1.09861229) / 2
    assert top[0].shape == ()
    assert float(top[0].data) == pytest.approx(0.75310912, abs=1e-8)
    assert layer.forward_and_loss(bottom, top) == pytest.approx(0.75310912, abs=1e-8)   # loss_weight 1


def _ignored_example():
    scores = rng.standard_normal((3, 4, 2))          # outer 3, classes 4, inner 2
    labels = np.array([[0, 3], [255, 1], [2, 255]], dtype=float)
    return scores, labels


@pytest.mark.parametrize("mode,divisor", [("VALID", 4), ("FULL", 6), ("BATCH_SIZE", 3), ("NONE", 1)])
def test_softmax_loss_normalization_modes(mode, divisor):
    scores, labels = _ignored_example()
    layer, bottom, top = make_layer(
        _swl(f"loss_param {{ ignore_label: 255 normalization: {mode} }}"), [scores, labels])
    p = _softmax(scores, 1)
    total = -sum(np.log(p[i, int(labels[i, j]), j]) for i in range(3) for j in range(2) if labels[i, j] != 255)
    assert float(top[0].data) == pytest.approx(total / divisor, rel=1e-12)
    check_gradient(layer, bottom, top, check_bottom=[0])


@pytest.mark.parametrize("normalize,divisor", [("false", 3), ("true", 4)])
def test_softmax_loss_legacy_normalize(normalize, divisor):
    scores, labels = _ignored_example()
    _, _, full = make_layer(_swl("loss_param { ignore_label: 255 normalization: NONE }"), [scores, labels])
    _, _, top = make_layer(_swl(f"loss_param {{ ignore_label: 255 normalize: {normalize} }}"), [scores, labels])
    assert float(top[0].data) == pytest.approx(float(full[0].data) / divisor, rel=1e-12)


def test_softmax_loss_all_ignored_gives_zero_loss_and_gradient():
    scores = rng.standard_normal((2, 3))
    layer, bottom, top = make_layer(_swl("loss_param { ignore_label: -1 }"), [scores, np.array([-1.0, -1.0])])
    assert float(top[0].data) == 0
    top[0].diff[...] = 1
    layer.backward(top, [True, False], bottom)
    assert np.all(bottom[0].diff == 0)


@pytest.mark.parametrize("shape,axis,labels_shape", [
    ((2, 3, 2, 2), 1, (2, 1, 2, 2)),
    ((2, 2, 3), 2, (2, 2)),
    ((4, 5), -1, (4,)),
])
def test_softmax_loss_gradient_over_axes(shape, axis, labels_shape):
    scores = rng.standard_normal(shape)
    classes = shape[axis]
    labels = rng.integers(0, classes, labels_shape).astype(float)
    layer, bottom, top = make_layer(_swl(axis=axis), [scores, labels], num_top=2)
    np.testing.assert_allclose(top[1].data, _softmax(scores, axis), rtol=1e-12)
    check_gradient(layer, bottom, top, check_bottom=[0], top_weights=[np.array(1.7), np.zeros(shape)])


def test_softmax_loss_gradient_scaled_by_loss_weight():
    scores = np.array([[0.5, -0.5, 1.0]])
    layer, bottom, top = make_layer(_swl(), [scores, np.array([1.0])])
    top[0].diff[...] = 3.0
    layer.backward(top, [True, False], bottom)
    expected = _softmax(scores, 1) - np.array([[0, 1, 0]])
    np.testing.assert_allclose(bottom[0].diff, 3.0 * expected, rtol=1e-12)


def test_softmax_loss_matches_torch_cross_entropy():
    torch = _required.torch()
    scores = rng.standard_normal((5, 4, 3))
    labels = rng.integers(0, 4, (5, 3)).astype(float)
    labels[0, 1] = labels[3, 2] = -100
    _, _, top = make_layer(_swl("loss_param { ignore_label: -100 }"), [scores, labels])
    want = torch.nn.functional.cross_entropy(torch.from_numpy(scores), torch.from_numpy(labels).long(),
                                             ignore_index=-100)
    assert float(top[0].data) == pytest.approx(float(want), rel=1e-12)


@pytest.mark.parametrize("bad", [3.0, -1.0])
def test_softmax_loss_label_out_of_range_is_data_error(bad):
    with pytest.raises(DataError, match=r"layer 'test'.*label " + str(int(bad))):
        make_layer(_swl(), [rng.standard_normal((2, 3)), np.array([0.0, bad])])


def test_softmax_loss_label_count_mismatch_is_shape_error():
    with pytest.raises(ShapeError, match="number of labels"):
        make_layer(_swl(), [rng.standard_normal((2, 3, 2)), np.array([0.0, 1.0])])


def test_softmax_loss_refuses_backward_to_labels():
    layer, bottom, top = make_layer(_swl(), [rng.standard_normal((2, 3)), np.array([0.0, 1.0])])
    with pytest.raises(FirecaffeError, match="cannot backpropagate to label inputs"):
        layer.backward(top, [True, True], bottom)
    assert not layer.allow_force_backward(1) and layer.allow_force_backward(0)


# --- Accuracy ------------------------------------------------------------------

SCORES = np.array([[0.1, 0.5, 0.4],     # label 2: second best
                   [0.7, 0.2, 0.1],     # label 0: best
                   [0.3, 0.3, 0.4],     # label 1: tied with class 0 for second
                   [0.2, 0.5, 0.3]])    # label 0: third
LABELS = np.array([2.0, 0.0, 1.0, 0.0])


@pytest.mark.parametrize("top_k,expected", [(1, 1 / 4), (2, 2 / 4), (3, 4 / 4)])
def test_accuracy_top_k_hand_example(top_k, expected):
    _, _, top = make_layer(f'type: "Accuracy" accuracy_param {{ top_k: {top_k} }}', [SCORES, LABELS])
    assert top[0].shape == ()
    assert float(top[0].data) == pytest.approx(expected)


def test_accuracy_counts_ties_against_the_label():
    # the label's score ties the best one: another class scores >= it, so top-1 misses
    _, _, top = make_layer('type: "Accuracy"', [np.array([[0.5, 0.5]]), np.array([1.0])])
    assert float(top[0].data) == 0.0
    _, _, top = make_layer('type: "Accuracy"', [np.array([[0.5, 0.5]]), np.array([0.0])])
    assert float(top[0].data) == 0.0


def test_accuracy_ignore_label_and_per_class_top():
    labels = np.array([2.0, 0.0, -1.0, 0.0])
    _, _, top = make_layer('type: "Accuracy" accuracy_param { ignore_label: -1 top_k: 2 }',
                           [SCORES, labels], num_top=2)
    assert float(top[0].data) == pytest.approx(2 / 3)
    np.testing.assert_allclose(top[1].data, [0.5, 0.0, 1.0])     # class 1 never seen -> 0


def test_accuracy_over_spatial_axis():
    scores = np.zeros((1, 2, 3))
    scores[0, 1, :2] = 1                         # predicts class 1, 1, 0 at the three positions
    _, _, top = make_layer('type: "Accuracy"', [scores, np.array([[1.0, 0.0, 0.0]])])
    assert float(top[0].data) == pytest.approx(1 / 3)   # position 2 ties 0 vs 0: a miss


def test_accuracy_is_not_a_loss_and_checks_top_k():
    layer, _, _ = make_layer('type: "Accuracy"', [SCORES, LABELS])
    assert layer.loss_weights == [0.0]
    with pytest.raises(ShapeError, match="top_k"):
        make_layer('type: "Accuracy" accuracy_param { top_k: 4 }', [SCORES, LABELS])
    with pytest.raises(DataError, match="label 3"):
        make_layer('type: "Accuracy"', [SCORES, np.array([0.0, 3.0, 1.0, 1.0])])


# --- EuclideanLoss ---------------------------------------------------------------

def test_euclidean_loss_forward_hand_example():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    b = np.array([[1.0, 0.0], [0.0, 4.0]])
    _, _, top = make_layer('type: "EuclideanLoss"', [a, b])
    assert float(top[0].data) == pytest.approx((4 + 9) / 2 / 2)


def test_euclidean_loss_gradient_both_bottoms():
    a, b = rng.standard_normal((3, 2, 2)), rng.standard_normal((3, 4))
    layer, bottom, top = make_layer('type: "EuclideanLoss"', [a, b])
    check_gradient(layer, bottom, top)
    assert layer.allow_force_backward(1)


def test_euclidean_loss_shape_mismatch_names_both_shapes():
    with pytest.raises(ShapeError, match=r"\(3, 4\).*\(3, 5\)"):
        make_layer('type: "EuclideanLoss"', [np.zeros((3, 4)), np.zeros((3, 5))])


@pytest.mark.parametrize("axis", [1, 0, -1])
def test_softmax_in_place_matches_out_of_place(axis):
    from firecaffe.core.blob import Blob
    from firecaffe.ops import create_layer
    from firecaffe.engine.testing import layer_param
    x = rng.standard_normal((3, 5, 4))
    dy = rng.standard_normal(x.shape)
    layer, bottom, top = make_layer(f'type: "Softmax" softmax_param {{ axis: {axis} }}', [x])
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    param = layer_param(f'type: "Softmax" softmax_param {{ axis: {axis} }}')
    param.name = "inplace"
    layer2 = create_layer(param, dtype=np.float64)
    blob = Blob(x.shape, np.float64)
    blob.data[...] = x
    layer2.setup([blob], [blob])
    layer2.forward([blob], [blob])
    np.testing.assert_allclose(blob.data, _softmax(x, axis), rtol=1e-12)
    blob.diff[...] = dy
    layer2.backward([blob], [True], [blob])
    np.testing.assert_allclose(blob.diff, bottom[0].diff, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(bottom[0].data, x)        # out of place: input untouched
