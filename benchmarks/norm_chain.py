"""BatchNorm -> Scale -> ReLU as one chain against the three layers run one by one.

    python benchmarks/norm_chain.py [--repeat 9] [--shapes 16,64,112,112 16,256,56,56 ...]
                                    [--global-stats]

Each shape is a net Input -> Split (so the chain's bottom is not the input) -> BatchNorm ->
Scale (bias) -> ReLU, all in place, built twice: with the chain (engine/fusion.py plan_norm)
and with FIRECAFFE_FUSE_NORM=0. Forward and backward are timed alternately on the same data,
median of --repeat; the outputs and input gradients are checked to be bit for bit equal. The
default shapes are ResNet-50's at batch 16, one per stage (conv1's, then the 256, 512, 1024
and 2048 channel blocks).
"""
import argparse
import os
import time

import numpy as np
from google.protobuf import text_format

from firecaffe import Net
from firecaffe.proto import caffe_pb2

SHAPES = ["16,64,112,112", "16,256,56,56", "16,512,28,28", "16,1024,14,14", "16,2048,7,7"]


def chain_text(shape, global_stats):
    dims = " ".join(f"dim: {d}" for d in shape)
    return f"""force_backward: true
layer {{ name: "in" type: "Input" top: "x" input_param {{ shape {{ {dims} }} }} }}
layer {{ name: "sp" type: "Split" bottom: "x" top: "c" }}
layer {{ name: "bn" type: "BatchNorm" bottom: "c" top: "c"
        batch_norm_param {{ use_global_stats: {str(global_stats).lower()} }} }}
layer {{ name: "scale" type: "Scale" bottom: "c" top: "c"
        scale_param {{ bias_term: true filler {{ type: "gaussian" std: 1 }} bias_filler {{ type: "gaussian" std: 1 }} }} }}
layer {{ name: "relu" type: "ReLU" bottom: "c" top: "c" }}
"""


def build(text, fused):
    saved = os.environ.get("FIRECAFFE_FUSE_NORM")
    os.environ["FIRECAFFE_FUSE_NORM"] = "1" if fused else "0"
    try:
        return Net(text_format.Parse(text, caffe_pb2.NetParameter()), phase="TRAIN")
    finally:
        if saved is None:
            del os.environ["FIRECAFFE_FUSE_NORM"]
        else:
            os.environ["FIRECAFFE_FUSE_NORM"] = saved


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--shapes", nargs="+", default=SHAPES)
    parser.add_argument("--global-stats", action="store_true", help="use_global_stats: true (fine-tuning)")
    args = parser.parse_args()
    print(f"numpy {np.__version__}, cpu_count {os.cpu_count()}, repeat {args.repeat}, "
          f"{'global' if args.global_stats else 'batch'} statistics")
    print(f"{'shape':>18s} {'fwd chain':>10s} {'fwd apart':>10s} {'ratio':>6s} "
          f"{'bwd chain':>10s} {'bwd apart':>10s} {'ratio':>6s}")
    totals = np.zeros(4)
    for text_shape in args.shapes:
        shape = tuple(int(v) for v in text_shape.split(","))
        text = chain_text(shape, args.global_stats)
        nets = {"chain": build(text, True), "apart": build(text, False)}
        assert len(nets["chain"].norm_chain) == 1 and not nets["apart"].norm_chain
        for name in nets["chain"].params:
            for a, b in zip(nets["chain"].params[name], nets["apart"].params[name]):
                b.data[...] = a.data
        rng = np.random.default_rng(0)
        x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
        g = rng.standard_normal(shape).astype(np.float32)
        times = {k: ([], []) for k in nets}
        results = {}
        for _ in range(args.repeat):
            for k, net in nets.items():
                net.blobs["x"].data[...] = x
                t0 = time.perf_counter()
                net.forward_range(1)
                t1 = time.perf_counter()
                out = net.blobs["c"].data.copy()
                net.blobs["c"].diff[...] = g
                t2 = time.perf_counter()
                net.backward_range(end=1)
                t3 = time.perf_counter()
                times[k][0].append(t1 - t0)
                times[k][1].append(t3 - t2)
                results[k] = (out, net.blobs["x"].diff.copy())
        for a, b in zip(results["chain"], results["apart"]):
            assert np.array_equal(a.view(np.int32), b.view(np.int32)), "the chain and the layers differ"
        med = [np.median(times[k][j]) * 1e3 for j in (0, 1) for k in ("chain", "apart")]
        totals += med
        print(f"{text_shape:>18s} {med[0]:10.1f} {med[1]:10.1f} {med[0] / med[1]:6.2f} "
              f"{med[2]:10.1f} {med[3]:10.1f} {med[2] / med[3]:6.2f}")
    print(f"{'sum':>18s} {totals[0]:10.1f} {totals[1]:10.1f} {totals[0] / totals[1]:6.2f} "
          f"{totals[2]:10.1f} {totals[3]:10.1f} {totals[2] / totals[3]:6.2f}   (ms; bit for bit equal)")


if __name__ == "__main__":
    main()
