"""Deep Compression's storage accounting on AlexNet and SqueezeNet v1.0, by our encoder.

No ImageNet weights ship here, so the weights are each net's own initialisation (the fillers of
its train_val.prototxt, drawn by firecaffe with a fixed seed): AlexNet's are Gaussian (std 0.01,
fc 0.005), SqueezeNet's Xavier (uniform). Pruning and quantization use the paper's per-layer
densities and bit widths; no retraining (it does not change the storage accounting, only the
values). The script writes the initialised .caffemodel, then times `firecaffe compress` on it
as a user would run it, with its peak memory (the child's max RSS, from /usr/bin/time).

    python benchmarks/compress_storage.py --out /tmp/dc [--only alexnet|squeezenet]
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# Han et al. 2016, Table 4: weights kept per layer; conv 8 bits, fc 5 bits; 4-bit relative index
ALEXNET = "conv1:0.84,conv2:0.38,conv3:0.35,conv4:0.37,conv5:0.37,fc6:0.09,fc7:0.09,fc8:0.25"
RUNS = [
    ("alexnet", "paper (Table 4): 6.9 MB, 35x", ["--density", ALEXNET, "--bits", "conv*:8,fc*:5",
                                                 "--index-bits", "4"]),
    ("alexnet", "same, index width chosen per layer", ["--density", ALEXNET, "--bits", "conv*:8,fc*:5"]),
    ("squeezenet_v1.0", "paper: <= 0.66 MB at 8 bits", ["--density", "0.33", "--bits", "8"]),
    ("squeezenet_v1.0", "paper: <= 0.47 MB at 6 bits", ["--density", "0.33", "--bits", "6"]),
]


def initialised(net, out):
    """nets/NET/deploy.prototxt's weights drawn from NET/train_val.prototxt's fillers, as a .caffemodel."""
    from firecaffe.core import backend, fillers
    from firecaffe.engine.net import Net
    from firecaffe.proto import caffe_pb2, io
    path = os.path.join(out, f"{net}_init.caffemodel")
    if os.path.exists(path):
        return path
    backend.seed(1)
    shapes = Net(os.path.join(REPO, "nets", net, "deploy.prototxt"), phase="TEST", shapes_only=True)
    train = {lp.name: lp for lp in io.read_net(os.path.join(REPO, "nets", net, "train_val.prototxt")).layer}
    param = caffe_pb2.NetParameter(name=shapes.name)
    for layer, lp in zip(shapes.layers, shapes.param.layer):
        if not layer.blobs:
            continue
        new = param.layer.add(name=lp.name, type=lp.type)
        source = train[lp.name]
        conf = source.convolution_param if lp.type == "Convolution" else source.inner_product_param
        for k, blob in enumerate(layer.blobs):
            filler = conf.weight_filler if k == 0 else conf.bias_filler
            new.blobs.add().CopyFrom(io.array_to_blob(fillers.fill(filler, blob.shape, np.float32)))
    io.write_caffemodel(param, path)
    return path


def compress(net, weights, out, flags, tag):
    fcz = os.path.join(out, f"{net}_{tag}.fcz")
    deploy = os.path.join(REPO, "nets", net, "deploy.prototxt")
    env = dict(os.environ, PYTHONPATH=REPO)
    began = time.perf_counter()
    run = subprocess.run(["/usr/bin/time", "-f", "MAXRSS_KB %M", sys.executable, "-m", "firecaffe", "compress",
                          deploy, "--weights", weights, "--out", fcz, *flags, "--report", "--json"],
                         env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if run.returncode:
        sys.exit(run.stderr)
    text = run.stdout
    peak = 1024 * int(run.stderr.rsplit("MAXRSS_KB", 1)[1].split()[0])
    return text[:text.index("{")], json.loads(text[text.index("{"):]), seconds, peak


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="/tmp/dc")
    parser.add_argument("--only")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for index, (net, target, flags) in enumerate(RUNS):
        if args.only and not net.startswith(args.only):
            continue
        weights = initialised(net, args.out)
        table, summary, seconds, peak = compress(net, weights, args.out, flags, index)
        total = summary["total"]
        print(f"== {net} {' '.join(flags)}\n{table}")
        print(f"file {total['stored'] / 1e6:.3f} MB ({total['ratio']:.1f}x; {target}); "
              f"before Huffman {total['quantized'] / 1e6:.3f} MB ({total['ratio_quantized']:.1f}x); "
              f"{seconds:.0f} s; peak RSS {peak / 1e6:.0f} MB = {peak / total['dense']:.2f}x the float32 weights\n")


if __name__ == "__main__":
    main()
