"""Net surgery, as in pycaffe's notebook: edit parameters by hand, copy them between
nets whose layers differ in shape, and turn a classifier into a fully
convolutional net that scores every window of a larger image at once.

    python docs/examples/net_surgery.py [--out /tmp/surgery]
"""
import argparse
import os

import numpy as np

import firecaffe as caffe
from firecaffe import layers as L, params as P


def classifier(height, width, fully_convolutional):
    """conv -> pool -> fc (a 10-way classifier on 8x8 images); with
    ``fully_convolutional`` the fc layer is a convolution over the 3x3 pooled map.
    (No padding, so that a window of a large image sees exactly what it would alone.)"""
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, height, width]))
    n.conv1 = L.Convolution(n.data, kernel_size=3, num_output=6, weight_filler=dict(type="gaussian", std=0.3))
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.pool1 = L.Pooling(n.relu1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    if fully_convolutional:
        n["fc-conv"] = L.Convolution(n.pool1, kernel_size=3, num_output=10)
        n.prob = L.Softmax(n["fc-conv"])
    else:
        n.fc = L.InnerProduct(n.pool1, num_output=10, weight_filler=dict(type="gaussian", std=0.3))
        n.prob = L.Softmax(n.fc)
    return n.to_proto()


def write(proto, path):
    with open(path, "w") as f:
        f.write(str(proto))
    return path


def surgery(out):
    os.makedirs(out, exist_ok=True)
    small = write(classifier(8, 8, False), os.path.join(out, "classifier.prototxt"))
    full = write(classifier(16, 16, True), os.path.join(out, "fully_conv.prototxt"))
    net = caffe.Net(small, caffe.TEST)
    caffe.set_random_seed(5)

    # 1. edit parameters in place: a hand-made edge filter as conv1's first output
    net.params["conv1"][0].data[0, 0] = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    net.params["conv1"][1].data[0] = 0.0
    weights = os.path.join(out, "classifier.caffemodel")
    net.save(weights)

    # 2. copy the parameters into the fully convolutional net: conv1 by name (same shapes),
    #    fc -> fc-conv by reshaping (10 x 54 becomes 10 x 6 x 3 x 3)
    net_full = caffe.Net(full, weights, caffe.TEST)
    print("fc", net.params["fc"][0].data.shape, "-> fc-conv", net_full.params["fc-conv"][0].data.shape)
    net_full.params["fc-conv"][0].data.flat = net.params["fc"][0].data.flat
    net_full.params["fc-conv"][1].data[...] = net.params["fc"][1].data
    net_full.save(os.path.join(out, "fully_conv.caffemodel"))

    # 3. the fully convolutional net scores every 8x8 window (stride 2) of a 16x16 image
    image = np.random.default_rng(0).random((1, 1, 16, 16)).astype(np.float32)
    scores = net_full.forward(data=image)["prob"]
    print("score map", scores.shape, "best class per window:\n", scores[0].argmax(axis=0))
    worst = 0.0
    for i in range(scores.shape[2]):
        for j in range(scores.shape[3]):
            window = image[:, :, 2 * i:2 * i + 8, 2 * j:2 * j + 8]
            worst = max(worst, float(np.abs(net.forward(data=window)["prob"][0] - scores[0, :, i, j]).max()))
    print(f"largest difference from classifying each window alone: {worst:.2g}")
    return worst


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/firecaffe_surgery_example")
    surgery(parser.parse_args().out)
