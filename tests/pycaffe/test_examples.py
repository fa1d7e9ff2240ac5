"""The pycaffe workflows shipped in docs/examples run with `import firecaffe as caffe`."""
import importlib
import os

import numpy as np
import pytest

import firecaffe as caffe

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "examples")


@pytest.fixture
def example(monkeypatch):
    monkeypatch.syspath_prepend(EXAMPLES)
    return importlib.import_module


def test_lenet_written_with_netspec_trains_step_by_step(example, tmp_path):
    lenet = example("lenet_netspec")
    loss, accuracy = lenet.train(150, str(tmp_path))
    assert "HDF5Data" in (tmp_path / "lenet_auto_train.prototxt").read_text()
    assert loss[-10:].mean() < 0.3 < loss[:10].mean()
    assert accuracy > 0.9                         # chance is 0.1


def test_net_surgery_makes_a_fully_convolutional_net_that_matches_the_classifier(example, tmp_path):
    worst = example("net_surgery").surgery(str(tmp_path))
    assert worst < 1e-5
    assert (tmp_path / "fully_conv.caffemodel").stat().st_size > 0


def he_weights(deploy, path):
    """Weights for ``deploy`` whose outputs depend on the input (the fillers' tiny
    gaussians leave a deep net's softmax flat)."""
    net = caffe.Net(deploy, caffe.TEST)
    rng = np.random.default_rng(0)
    for blobs in net.params.values():
        w = blobs[0].data
        w[...] = rng.normal(0, np.sqrt(1.0 / np.prod(w.shape[1:])), w.shape)
        if len(blobs) > 1:
            blobs[1].data[...] = 0
    net.save(path)
    return path


def test_classification_with_a_transformer_and_with_classifier(example, tmp_path):
    classify = example("classify")
    image = classify.synthetic_image(str(tmp_path / "image.png"))
    weights = he_weights(classify.DEPLOY, str(tmp_path / "he.caffemodel"))
    probs = classify.classify(image, weights=weights)
    assert probs.shape == (1000,) and probs.sum() == pytest.approx(1, abs=1e-4)
    assert probs.max() > 1.2 * probs.min()            # not flat, so the comparison below means something
    centre = caffe.Classifier(classify.DEPLOY, weights, image_dims=(227, 227), mean=classify.MEAN_BGR,
                              raw_scale=255, channel_swap=(2, 1, 0)).predict([caffe.io.load_image(image)],
                                                                             oversample=False)
    np.testing.assert_allclose(centre[0].ravel(), probs, rtol=1e-3, atol=1e-6)
    ten = classify.classify_with_classifier(image, weights=weights)
    assert ten.shape == (1, 1000) and ten.sum() == pytest.approx(1, abs=1e-4)


HAS_PYTHON_LAYERS = {"Python", "SigmoidCrossEntropyLoss"} <= set(caffe.layer_type_list()) and hasattr(caffe, "Layer")


@pytest.mark.skipif(not HAS_PYTHON_LAYERS, reason="Python layers (firecaffe.Layer) and SigmoidCrossEntropyLoss come "
                                                  "from other branches of issue 15; this test runs once they are merged")
def test_multilabel_net_with_a_python_data_layer_learns_every_label(example, tmp_path):
    accuracy = example("multilabel_python_layer").train(300, str(tmp_path))
    assert accuracy > 0.9                         # chance is 0.5
