"""caffe.Classifier (centre crop and ten crops) and caffe.Detector (windows)."""
import numpy as np
import pytest
from PIL import Image

import firecaffe as caffe

DEPLOY = """name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 5 dim: 5 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.2 } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


@pytest.fixture
def model(tmp_path):
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(DEPLOY)
    weights = str(tmp_path / "w.caffemodel")
    caffe.Net(str(deploy), caffe.TEST).save(weights)
    return str(deploy), weights


def scores_of(net, batch):
    return np.stack([net.forward(data=np.stack([x, x]))["prob"][0].copy() for x in batch])


def test_classifier_centre_crop_and_ten_crops(model):
    deploy, weights = model
    clf = caffe.Classifier(deploy, weights, image_dims=(7, 7), mean=np.array([0.1, 0.2, 0.3]), raw_scale=2.0)
    images = [np.random.default_rng(k).random((9, 9, 3)).astype(np.float32) for k in range(3)]
    resized = [caffe.io.resize_image(im, (7, 7)) for im in images]
    t = clf.transformer
    centre = clf.predict(images, oversample=False)
    expected = scores_of(clf, [t.preprocess("data", im[1:6, 1:6]) for im in resized])
    np.testing.assert_allclose(centre, expected, rtol=1e-5, atol=1e-7)
    ten = clf.predict(images)
    crops = caffe.io.oversample(resized, (5, 5))
    expected = scores_of(clf, [t.preprocess("data", c) for c in crops]).reshape(3, 10, 4).mean(1)
    np.testing.assert_allclose(ten, expected, rtol=1e-5, atol=1e-7)
    assert not np.allclose(ten, centre)


def test_detector_scores_each_window(model, tmp_path):
    deploy, weights = model
    pixels = (np.random.default_rng(3).random((12, 10, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "im.png")
    det = caffe.Detector(deploy, weights, raw_scale=255)
    windows = [(0, 0, 5, 5), (2, 3, 12, 10)]
    found = det.detect_windows([(str(tmp_path / "im.png"), windows)])
    assert [list(d["window"]) for d in found] == [list(w) for w in windows]
    image = caffe.io.load_image(str(tmp_path / "im.png"))
    for d, (y0, x0, y1, x1) in zip(found, windows):
        crop = caffe.io.resize_image(image[y0:y1, x0:x1], (5, 5))
        expected = scores_of(det, [det.transformer.preprocess("data", crop)])[0]
        np.testing.assert_allclose(d["prediction"], expected, rtol=1e-5, atol=1e-7)
