"""Does InnerProduct's sparse forward (firecaffe/ops/sparse_ip.py) pay inside a net? Two nets of
the same definition and weights in one process: one as firecaffe runs it (sparse where a
weight is at most 10% dense), one with FIRECAFFE_SPARSE_DENSITY=0 (dense: oneDNN or NumPy).

  - lenet_digits compressed by `firecaffe compress` (trained here for a few hundred iterations,
    densities as docs/compression.md: ip1 5%, ip2 20%), its TEST net on the shipped test digits;
  - AlexNet's fc6-fc8 (deploy net) at Deep Compression's densities (fc6 9%, fc7 9%, fc8 25%),
    Gaussian weights pruned by magnitude (no ImageNet weights ship here; the speed depends on
    the density and the shapes, not on the values), pool5 filled at random.

Steady state: ms per forward of the InnerProduct layers (best of --reps after warm-up), and what
the sparse layer measured for its last CSR build and its last density scan (np.count_nonzero).
AlexNet unpruned: the same fc6-fc8 dense, to show what the sparse machinery costs a dense net.
Test-pass loop: a solver's test pass as Solver.test runs it on a test net sharing the train
net's weights: the weights change (an update through the arena), then T forwards; ms per pass
(the sparse net pays its verification, its dense first forward and its rebuild in it).

    python benchmarks/sparse_ip_net.py [--threads 2] [--reps 5] [--json FILE]
"""
import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from threadpoolctl import threadpool_limits

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from firecaffe.engine.net import Net  # noqa: E402
from firecaffe.proto import io  # noqa: E402
from firecaffe.solvers import Solver  # noqa: E402

LENET = os.path.join(REPO, "nets", "lenet_digits")
ALEXNET = os.path.join(REPO, "nets", "alexnet", "deploy.prototxt")
PAPER = {"fc6": 0.09, "fc7": 0.09, "fc8": 0.25}


@contextlib.contextmanager
def density_env(value):
    old = os.environ.get("FIRECAFFE_SPARSE_DENSITY")
    if value is not None:
        os.environ["FIRECAFFE_SPARSE_DENSITY"] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("FIRECAFFE_SPARSE_DENSITY", None)
        else:
            os.environ["FIRECAFFE_SPARSE_DENSITY"] = old


def pair(path, weights=None):
    """The same net twice: (as firecaffe runs it, dense only)."""
    nets = []
    for value in (None, "0"):
        with density_env(value):
            nets.append(Net(path, "TEST", weights=weights))
    return nets


def lenet_fcz(workdir, iterations):
    """lenet_digits trained ``iterations`` steps, compressed by the CLI; the .fcz path."""
    param = io.read_solver(os.path.join(LENET, "solver.prototxt"))
    param.display = param.test_interval = 0
    param.snapshot_after_train = False
    solver = Solver(param, path=os.path.join(LENET, "solver.prototxt"), quiet=True)
    solver.step(iterations)
    trained = os.path.join(workdir, "lenet.caffemodel")
    solver.net.save(trained)
    out = os.path.join(workdir, "lenet.fcz")
    subprocess.run([sys.executable, "-m", "firecaffe", "compress", os.path.join(LENET, "solver.prototxt"),
                    "--weights", trained, "--out", out, "--density", "conv1:0.7,conv2:0.15,ip1:0.05,ip2:0.2",
                    "--bits", "conv*:5", "--prune-iters", "50", "--quantize-iters", "50"],
                   check=True, cwd=REPO, stdout=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=REPO))
    return out


def lenet_at_batch(workdir, batch):
    param = io.read_net(os.path.join(LENET, "train_test.prototxt"))
    for layer in param.layer:
        if layer.type == "HDF5Data":
            layer.hdf5_data_param.batch_size = batch
    path = os.path.join(workdir, f"lenet_{batch}.prototxt")
    io.write_text(param, path)
    return path


def alexnet_at_batch(workdir, batch):
    param = io.read_net(ALEXNET)
    param.layer[0].input_param.shape[0].dim[0] = batch
    path = os.path.join(workdir, f"alexnet_{batch}.prototxt")
    io.write_text(param, path)
    return path


def prune_alexnet(nets, gen, pruned=True):
    for name, density in PAPER.items():
        shape = nets[0].params[name][0].shape
        w = gen.standard_normal(shape, dtype=np.float32) * 0.01
        if pruned:
            w[np.abs(w) < np.quantile(np.abs(w), 1 - density)] = 0
        for net in nets:
            net.layer_dict[name].blobs[0].write(w)
    pool5 = gen.standard_normal(nets[0].blobs["pool5"].shape, dtype=np.float32)
    for net in nets:
        net.blobs["pool5"].data[...] = pool5


def ip_indices(net, first=None):
    start = net.layers.index(net.layer_dict[first]) if first else 0
    return [i for i in range(start, len(net.layers)) if net.layers[i].type == "InnerProduct"]


def forward_ms(nets, indices, reps):
    """Best-of-``reps`` ms of one forward of the layers ``indices`` in each net (their inputs as
    they are), the nets alternating."""
    best = [float("inf")] * len(nets)
    for r in range(reps):
        for k in (range(len(nets)) if r % 2 == 0 else reversed(range(len(nets)))):
            began = time.perf_counter()
            for i in indices:
                nets[k].forward_layer(i)
            best[k] = min(best[k], time.perf_counter() - began)
    return [1e3 * b for b in best]


def test_pass_ms(nets, span, forwards, passes, gen):
    """Best ms per test pass of each net, the nets alternating (first one, then the other): an
    update of the weights through the arena (every kept weight moves, as in a solver's step), then
    ``forwards`` forwards of the layers ``span`` (as a test net sharing a train net's arena)."""
    keeps = [net.param_arena != 0 for net in nets]
    best = [float("inf")] * len(nets)
    for p in range(passes):
        for k in (range(len(nets)) if p % 2 == 0 else reversed(range(len(nets)))):
            nets[k].param_arena[keeps[k]] += np.float32(1e-7)
            began = time.perf_counter()
            for _ in range(forwards):
                for i in span:
                    nets[k].forward_layer(i)
            best[k] = min(best[k], time.perf_counter() - began)
    return [1e3 * b for b in best]


def compare(label, nets, indices, reps, rows):
    forward_ms(nets, indices, 3)                            # warm-up: the copy built, times measured
    engines = {nets[0].layers[i].name: nets[0].layers[i].engine_name for i in indices}
    for k in indices:
        a, b = forward_ms(nets, [k], reps)
        name, costs = nets[0].layers[k].name, nets[0].layers[k].sparse.costs
        rows.append(dict(net=label, layer=name, engine=engines[name], firecaffe_ms=a, dense_ms=b,
                         build_ms=None if costs.build_s is None else 1e3 * costs.build_s,
                         scan_ms=None if costs.scan_s is None else 1e3 * costs.scan_s))
        print(f"{label:>16} {name:>5} {engines[name][:34]:>34} {a:9.3f} {b:9.3f} {b / a:7.2f}x", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--lenet-iters", type=int, default=300)
    parser.add_argument("--json")
    args = parser.parse_args()
    os.chdir(REPO)
    gen = np.random.default_rng(0)
    steady, loops = [], []
    load_before = os.getloadavg()[0]
    print(f"load before: {load_before:.2f}; {args.threads} threads; ms (best of {args.reps})")
    print(f"{'net':>16} {'layer':>5} {'engine (firecaffe)':>34} {'firecaffe':>9} {'dense':>9} {'ratio':>8}")
    with threadpool_limits(args.threads), tempfile.TemporaryDirectory() as tmp:
        fcz = lenet_fcz(tmp, args.lenet_iters)
        for batch in (1, 120):
            nets = pair(lenet_at_batch(tmp, batch), fcz)
            for net in nets:
                net.forward()
            compare(f"lenet b{batch}", nets, ip_indices(nets[0]), args.reps, steady)
            if batch == 120:
                for forwards in (1, 2, 5, 20):
                    span = list(range(len(nets[0].layers)))
                    a, b = test_pass_ms(nets, span, forwards, 4 * args.reps, gen)
                    loops.append(dict(net="lenet b120", forwards=forwards, firecaffe_ms=a, dense_ms=b))
        for batch, pruned in ((1, True), (8, True), (64, True), (1, False)):
            nets = pair(alexnet_at_batch(tmp, batch))
            prune_alexnet(nets, gen, pruned)
            label = f"alexnet b{batch}" + ("" if pruned else " unpruned")
            compare(label, nets, ip_indices(nets[0], "fc6"), args.reps, steady)
            if batch in (1, 64):
                fc = list(range(nets[0].layers.index(nets[0].layer_dict["fc6"]), len(nets[0].layers)))
                for forwards in (1, 5, 20):
                    a, b = test_pass_ms(nets, fc, forwards, args.reps, gen)
                    loops.append(dict(net=label, forwards=forwards, firecaffe_ms=a, dense_ms=b))
            del nets
    print("\ntest pass: the weights change, then T forwards (whole lenet net; AlexNet fc6-fc8)")
    print(f"{'net':>16} {'T':>3} {'firecaffe':>10} {'dense':>10} {'ratio':>8}")
    for row in loops:
        print(f"{row['net']:>16} {row['forwards']:>3} {row['firecaffe_ms']:10.2f} {row['dense_ms']:10.2f} "
              f"{row['dense_ms'] / row['firecaffe_ms']:7.2f}x")
    load = os.getloadavg()[0]
    print(f"load after: {load:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(threads=args.threads, reps=args.reps, cpus=os.cpu_count(), load_before=load_before,
                           load_after=load, date=time.strftime("%Y-%m-%d"), steady=steady, loops=loops), f, indent=1)


if __name__ == "__main__":
    main()
