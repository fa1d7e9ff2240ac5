"""A multilabel net fed by a Python data layer, as in pycaffe's "multilabel with
a Python data layer" example, on synthetic 8x8 images: each of four bars (top,
bottom, left, right) is present or not, and the net learns all four labels at
once with a SigmoidCrossEntropyLoss.

    python docs/examples/multilabel_python_layer.py [--iters 300] [--out /tmp/multilabel]

The layer class lives in this file; the net names it as python_param { module:
"multilabel_python_layer" layer: "BarsDataLayer" }, so this folder must be on
sys.path (it is when the script is run directly).
"""
import argparse
import json
import os

import numpy as np

import firecaffe as caffe
from firecaffe import layers as L

NUM_LABELS = 4


def make_bars(rng, count):
    """Images (count x 1 x 8 x 8) with noise, and which bars they hold (count x 4)."""
    labels = rng.random((count, NUM_LABELS)) < 0.5
    images = rng.normal(0, 0.3, (count, 1, 8, 8))
    images[labels[:, 0], 0, 0:2, :] += 1          # top bar
    images[labels[:, 1], 0, 6:8, :] += 1          # bottom bar
    images[labels[:, 2], 0, :, 0:2] += 1          # left bar
    images[labels[:, 3], 0, :, 6:8] += 1          # right bar
    return images.astype(np.float32), labels.astype(np.float32)


class BarsDataLayer(caffe.Layer):
    """Tops: data (batch x 1 x 8 x 8) and label (batch x 4); param_str is JSON
    with batch_size and seed."""

    def setup(self, bottom, top):
        params = json.loads(self.param_str)
        self.batch_size = params["batch_size"]
        self.rng = np.random.default_rng(params["seed"])
        if len(top) != 2:
            raise Exception("BarsDataLayer needs two tops: data and label")

    def reshape(self, bottom, top):
        top[0].reshape(self.batch_size, 1, 8, 8)
        top[1].reshape(self.batch_size, NUM_LABELS)

    def forward(self, bottom, top):
        top[0].data[...], top[1].data[...] = make_bars(self.rng, self.batch_size)

    def backward(self, top, propagate_down, bottom):
        pass


def multilabel_net(batch_size, seed):
    n = caffe.NetSpec()
    n.data, n.label = L.Python(module="multilabel_python_layer", layer="BarsDataLayer", ntop=2,
                               param_str=json.dumps({"batch_size": batch_size, "seed": seed}))
    n.conv = L.Convolution(n.data, kernel_size=3, num_output=8, weight_filler=dict(type="xavier"))
    n.relu = L.ReLU(n.conv, in_place=True)
    n.score = L.InnerProduct(n.relu, num_output=NUM_LABELS, weight_filler=dict(type="xavier"))
    n.loss = L.SigmoidCrossEntropyLoss(n.score, n.label)
    return n.to_proto()


def train(iters, out):
    caffe.set_mode_cpu()
    os.makedirs(out, exist_ok=True)
    train_path, test_path = os.path.join(out, "train.prototxt"), os.path.join(out, "test.prototxt")
    with open(train_path, "w") as f:
        f.write(str(multilabel_net(32, seed=1)))
    with open(test_path, "w") as f:
        f.write(str(multilabel_net(100, seed=2)))
    solver_path = os.path.join(out, "solver.prototxt")
    with open(solver_path, "w") as f:
        f.write(f'train_net: "{train_path}"\ntest_net: "{test_path}"\ntest_iter: 1\ntest_interval: 100000\n'
                'test_initialization: false\nbase_lr: 0.1\nmomentum: 0.9\nlr_policy: "fixed"\n'
                f'display: 0\nmax_iter: 100000\nsnapshot: 0\nsnapshot_prefix: "{out}/bars"\nrandom_seed: 1\n')
    solver = caffe.SGDSolver(solver_path)
    solver.step(iters)
    net = solver.test_nets[0]
    net.forward()
    predicted = net.blobs["score"].data > 0
    accuracy = float((predicted == (net.blobs["label"].data > 0.5)).mean())
    print(f"iteration {solver.iter}: loss {float(solver.net.blobs['loss'].data):.3f}, "
          f"per-label test accuracy {accuracy:.3f}")
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--out", default="/tmp/firecaffe_multilabel_example")
    args = parser.parse_args()
    train(args.iters, args.out)
