"""ContrastiveLoss, HingeLoss, InfogainLoss, MultinomialLogisticLoss,
SigmoidCrossEntropyLoss: gradients against finite differences, values against
their formulas, and labels that never take a gradient."""
import numpy as np
import pytest

from firecaffe.engine.testing import check_gradient, make_layer
from firecaffe.errors import DataError, FirecaffeError
from firecaffe.proto.io import array_to_blob

gen = np.random.default_rng(0)
SCORES = gen.standard_normal((4, 5))
LABELS = np.array([1.0, 0.0, 4.0, 2.0])


def loss_of(text, bottoms, num_top=1):
    layer, bottom, top = make_layer(text, bottoms, num_top=num_top)
    layer.forward(bottom, top)
    return layer, bottom, top


def pairs(legacy):
    """a, b and similarity for 6 pairs, with the dissimilar distances away from
    the margin (the loss has a kink there)."""
    g = np.random.default_rng(3)
    a = g.standard_normal((6, 3, 1, 1))
    b = a + g.standard_normal((6, 3, 1, 1)) * np.array([0.1, 0.2, 0.3, 0.5, 0.8, 1.5])[:, None, None, None]
    similar = np.array([1, 0, 1, 0, 0, 0.7]).reshape(6, 1, 1, 1)     # 0.7 truncates to 0: dissimilar
    return [a, b, similar]


@pytest.mark.parametrize("legacy", [True, False])
def test_contrastive_gradient(legacy):
    text = f'type: "ContrastiveLoss" contrastive_loss_param {{ margin: 1.3 legacy_version: {str(legacy).lower()} }}'
    layer, bottom, top = make_layer(text, pairs(legacy))
    # Caffe divides the dissimilar gradient by d + 1e-4 instead of d: exact only in the legacy form.
    check_gradient(layer, bottom, top, check_bottom=[0, 1], rtol=1e-5 if legacy else 2e-3)


def test_contrastive_loss_value():
    a, b, s = pairs(False)
    _, _, top = loss_of('type: "ContrastiveLoss" contrastive_loss_param { margin: 1.3 }', [a, b, s])
    d = np.sqrt(((a - b) ** 2).reshape(6, -1).sum(1))
    similar = s.reshape(-1).astype(int) != 0
    expected = np.where(similar, d ** 2, np.maximum(1.3 - d, 0) ** 2).sum() / 6 / 2
    np.testing.assert_allclose(top[0].data, expected)


@pytest.mark.parametrize("norm", ["L1", "L2"])
def test_hinge_gradient(norm):
    layer, bottom, top = make_layer(f'type: "HingeLoss" hinge_loss_param {{ norm: {norm} }}',
                                    [SCORES * 0.6 + 0.05, LABELS])
    check_gradient(layer, bottom, top, check_bottom=[0])


def test_hinge_loss_value():
    _, _, top = loss_of('type: "HingeLoss" hinge_loss_param { norm: L2 }', [SCORES, LABELS])
    sign = np.ones_like(SCORES)
    sign[np.arange(4), LABELS.astype(int)] = -1
    np.testing.assert_allclose(top[0].data, (np.maximum(0, 1 + sign * SCORES) ** 2).sum() / 4)


def test_multinomial_logistic_gradient_and_value():
    prob = np.random.default_rng(1).uniform(0.1, 1.0, (4, 5))
    layer, bottom, top = make_layer('type: "MultinomialLogisticLoss"', [prob, LABELS.reshape(4, 1, 1, 1)])
    check_gradient(layer, bottom, top, check_bottom=[0])
    np.testing.assert_allclose(top[0].data, -np.log(prob[np.arange(4), LABELS.astype(int)]).sum() / 4)


def test_multinomial_logistic_clamps_tiny_probabilities():
    prob = np.zeros((2, 3))
    _, _, top = loss_of('type: "MultinomialLogisticLoss"', [prob, np.array([0.0, 2.0])])
    np.testing.assert_allclose(top[0].data, -np.log(1e-20))


SCE_CASES = ['', 'loss_param { ignore_label: -1 }', 'loss_param { ignore_label: -1 normalization: VALID }',
             'loss_param { normalization: FULL }', 'loss_param { normalize: true }',
             'loss_param { normalization: NONE }']


@pytest.mark.parametrize("extra", SCE_CASES)
def test_sigmoid_cross_entropy_gradient(extra):
    targets = np.random.default_rng(2).uniform(0, 1, (3, 4, 2))
    targets[0, 1, :] = -1
    layer, bottom, top = make_layer(f'type: "SigmoidCrossEntropyLoss" {extra}',
                                    [np.random.default_rng(4).standard_normal((3, 4, 2)) * 3, targets])
    check_gradient(layer, bottom, top, check_bottom=[0])


def test_sigmoid_cross_entropy_divides_by_the_batch_by_default():
    x = np.random.default_rng(5).standard_normal((3, 4)) * 4
    t = (np.random.default_rng(6).uniform(0, 1, (3, 4)) > 0.5).astype(float)
    p = 1 / (1 + np.exp(-x))
    cross = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    _, _, top = loss_of('type: "SigmoidCrossEntropyLoss"', [x, t])
    np.testing.assert_allclose(top[0].data, cross.sum() / 3)
    t[1, 2] = -1.5                                # truncates to -1: ignored
    _, _, top = loss_of('type: "SigmoidCrossEntropyLoss" loss_param { ignore_label: -1 normalization: VALID }',
                        [x, t])
    keep = np.ones((3, 4), bool)
    keep[1, 2] = False
    np.testing.assert_allclose(top[0].data, cross[keep].sum() / 11)


def infogain_matrix(classes=5):
    return np.random.default_rng(7).uniform(0, 1, (classes, classes)) + np.eye(classes)


@pytest.mark.parametrize("extra", ['', 'loss_param { ignore_label: 4 }', 'loss_param { normalization: BATCH_SIZE }'])
def test_infogain_gradient_with_h_bottom(extra):
    layer, bottom, top = make_layer(f'type: "InfogainLoss" {extra}', [SCORES, LABELS, infogain_matrix()])
    check_gradient(layer, bottom, top, check_bottom=[0])


def test_infogain_on_spatial_axis_and_probability_top():
    scores = np.random.default_rng(8).standard_normal((2, 3, 2, 2))
    labels = np.random.default_rng(9).integers(0, 3, (2, 1, 2, 2)).astype(float)
    layer, bottom, top = make_layer('type: "InfogainLoss"', [scores, labels, infogain_matrix(3)], num_top=2)
    check_gradient(layer, bottom, top, check_bottom=[0], top_weights=[np.array(1.5), np.zeros(scores.shape)])
    e = np.exp(scores - scores.max(1, keepdims=True))
    np.testing.assert_allclose(top[1].data, e / e.sum(1, keepdims=True))


def test_infogain_with_identity_h_is_softmax_loss(tmp_path):
    source = tmp_path / "h.binaryproto"
    source.write_bytes(array_to_blob(np.eye(5, dtype=np.float32)).SerializeToString())
    _, _, top = loss_of(f'type: "InfogainLoss" infogain_loss_param {{ source: "{source}" }}', [SCORES, LABELS])
    _, _, reference = loss_of('type: "SoftmaxWithLoss"', [SCORES, LABELS])
    np.testing.assert_allclose(top[0].data, reference[0].data, rtol=1e-6)


def test_infogain_refuses_normalize_and_a_wrong_h():
    with pytest.raises(FirecaffeError, match="normalize"):
        make_layer('type: "InfogainLoss" loss_param { normalize: true }', [SCORES, LABELS, infogain_matrix()])
    with pytest.raises(FirecaffeError, match="H must be 5 x 5"):
        make_layer('type: "InfogainLoss"', [SCORES, LABELS, infogain_matrix(4)])
    with pytest.raises(FirecaffeError, match="source"):
        make_layer('type: "InfogainLoss"', [SCORES, LABELS])


@pytest.mark.parametrize("text,bottoms,labels", [
    ('type: "HingeLoss"', [SCORES, LABELS], [1]),
    ('type: "MultinomialLogisticLoss"', [np.abs(SCORES), LABELS], [1]),
    ('type: "SigmoidCrossEntropyLoss"', [SCORES, SCORES > 0], [1]),
    ('type: "InfogainLoss"', [SCORES, LABELS, infogain_matrix()], [1, 2]),
    ('type: "ContrastiveLoss"', pairs(True), [2]),
])
def test_labels_take_no_gradient(text, bottoms, labels):
    layer, bottom, top = loss_of(text, bottoms)
    for i in range(len(bottoms)):
        assert layer.allow_force_backward(i) == (i not in labels)
    for i in labels:
        down = [False] * len(bottoms)
        down[i] = True
        with pytest.raises(FirecaffeError, match="cannot backpropagate"):
            layer.backward(top, down, bottom)


@pytest.mark.parametrize("text", ['type: "HingeLoss"', 'type: "MultinomialLogisticLoss"', 'type: "InfogainLoss"'])
def test_label_out_of_range_is_a_data_error(text):
    bottoms = [np.abs(SCORES), np.array([0.0, 1.0, 5.0, 2.0])]
    if text == 'type: "InfogainLoss"':
        bottoms.append(infogain_matrix())
    layer, bottom, top = make_layer(text, bottoms)
    with pytest.raises(DataError, match="label 5"):
        layer.forward(bottom, top)
