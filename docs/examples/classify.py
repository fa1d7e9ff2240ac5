"""Classify an image with a deploy net and a Transformer, as in pycaffe's
"classification" notebook; then the same with caffe.Classifier (ten crops).

    python docs/examples/classify.py [--image cat.jpg] [--weights squeezenet.caffemodel]

Without --weights the net keeps its random initial weights (the numbers are then
meaningless, but every step runs); without --image a synthetic picture is used.
"""
import argparse
import os

import numpy as np

import firecaffe as caffe

HERE = os.path.dirname(os.path.abspath(__file__))
DEPLOY = os.path.join(HERE, "..", "..", "nets", "squeezenet_v1.1", "deploy.prototxt")
MEAN_BGR = np.array([104.0, 117.0, 123.0])        # ILSVRC-2012 channel means, BGR


def synthetic_image(path):
    from PIL import Image
    y, x = np.mgrid[0:256, 0:256]
    rgb = np.stack([x, y, (x + y) // 2], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(path)
    return path


def classify(image_path, deploy=DEPLOY, weights=None, batch=1):
    caffe.set_mode_cpu()
    net = caffe.Net(deploy, caffe.TEST, weights=weights)
    transformer = caffe.io.Transformer({"data": net.blobs["data"].data.shape})
    transformer.set_transpose("data", (2, 0, 1))       # H x W x C -> C x H x W
    transformer.set_mean("data", MEAN_BGR)             # after swapping to BGR
    transformer.set_raw_scale("data", 255)             # [0, 1] -> [0, 255]
    transformer.set_channel_swap("data", (2, 1, 0))    # RGB -> BGR
    net.blobs["data"].reshape(batch, 3, 227, 227)
    net.reshape()
    image = caffe.io.load_image(image_path)
    net.blobs["data"].data[...] = transformer.preprocess("data", image)
    probs = net.forward()["prob"][0].ravel().copy()
    print("top 5 classes:", probs.argsort()[::-1][:5], "probabilities:", np.sort(probs)[::-1][:5])
    return probs


def classify_with_classifier(image_path, deploy=DEPLOY, weights=None, oversample=True):
    classifier = caffe.Classifier(deploy, weights, image_dims=(256, 256), mean=MEAN_BGR,
                                  raw_scale=255, channel_swap=(2, 1, 0))
    scores = classifier.predict([caffe.io.load_image(image_path)], oversample=oversample)
    print(f"Classifier ({'10 crops' if oversample else 'centre crop'}): top class {scores[0].argmax()}")
    return scores


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image")
    parser.add_argument("--weights")
    parser.add_argument("--deploy", default=DEPLOY)
    args = parser.parse_args()
    path = args.image or synthetic_image("/tmp/firecaffe_example_image.png")
    classify(path, args.deploy, args.weights)
    classify_with_classifier(path, args.deploy, args.weights)
