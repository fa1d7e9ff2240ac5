"""LeNet written with NetSpec and trained step by step with SGDSolver, as in
pycaffe's "learning LeNet" notebook, on the digits shipped in nets/lenet_digits.

    python docs/examples/lenet_netspec.py [--iters 200] [--out /tmp/lenet]
"""
import argparse
import os

import numpy as np

import firecaffe as caffe
from firecaffe import layers as L, params as P

HERE = os.path.dirname(os.path.abspath(__file__))
DIGITS = os.path.join(HERE, "..", "..", "nets", "lenet_digits")


def lenet(hdf5_list, batch_size):
    n = caffe.NetSpec()
    n.data, n.label = L.HDF5Data(batch_size=batch_size, source=hdf5_list, ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=3, pad=1, num_output=20, weight_filler=dict(type="xavier"))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.conv2 = L.Convolution(n.pool1, kernel_size=3, pad=1, num_output=50, weight_filler=dict(type="xavier"))
    n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.fc1 = L.InnerProduct(n.pool2, num_output=128, weight_filler=dict(type="xavier"))
    n.relu1 = L.ReLU(n.fc1, in_place=True)
    n.score = L.InnerProduct(n.relu1, num_output=10, weight_filler=dict(type="xavier"))
    n.loss = L.SoftmaxWithLoss(n.score, n.label)
    return n.to_proto()


def write_files(out):
    os.makedirs(out, exist_ok=True)
    paths = {kind: os.path.join(out, f"lenet_auto_{kind}.prototxt") for kind in ("train", "test", "solver")}
    with open(paths["train"], "w") as f:
        f.write(str(lenet(os.path.abspath(os.path.join(DIGITS, "train.txt")), 64)))
    with open(paths["test"], "w") as f:
        f.write(str(lenet(os.path.abspath(os.path.join(DIGITS, "test.txt")), 120)))
    with open(paths["solver"], "w") as f:
        f.write(f'train_net: "{paths["train"]}"\ntest_net: "{paths["test"]}"\n'
                "test_iter: 3\ntest_interval: 100000\nbase_lr: 0.05\nmomentum: 0.9\n"
                'weight_decay: 0.0005\nlr_policy: "inv"\ngamma: 0.0001\npower: 0.75\n'
                f'display: 0\nmax_iter: 10000\nsnapshot: 0\nsnapshot_prefix: "{out}/lenet"\nrandom_seed: 1\n')
    return paths


def train(iters, out):
    caffe.set_mode_cpu()
    paths = write_files(out)
    solver = caffe.SGDSolver(paths["solver"])
    print("blobs:", [(k, v.data.shape) for k, v in solver.net.blobs.items()])
    print("params:", [(k, v[0].data.shape) for k, v in solver.net.params.items()])
    train_loss = np.zeros(iters)
    for it in range(iters):
        solver.step(1)                                   # one SGD iteration
        train_loss[it] = solver.net.blobs["loss"].data
    correct = 0
    test_net = solver.test_nets[0]                       # shares the train net's weights
    for _ in range(3):
        test_net.forward()
        correct += int((test_net.blobs["score"].data.argmax(1) == test_net.blobs["label"].data).sum())
    accuracy = correct / 360
    print(f"iteration {solver.iter}: loss {train_loss[:10].mean():.3f} (first 10) -> "
          f"{train_loss[-10:].mean():.3f} (last 10), test accuracy {accuracy:.3f}")
    return train_loss, accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--out", default="/tmp/firecaffe_lenet_example")
    args = parser.parse_args()
    train(args.iters, args.out)
