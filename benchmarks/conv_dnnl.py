"""The convolutions of a net in isolation, forward + backward (weights and data)
of each layer at its shape in the net, interleaved in one run:

- firecaffe's layer on oneDNN (the reorders between its arrays and oneDNN's
  preferred layouts included: the glue),
- the same oneDNN primitives alone, on buffers in their own layouts (what
  oneDNN itself reaches on the shape),
- firecaffe's layer on its NumPy path (im2col + OpenBLAS),
- PyTorch's conv2d forward + backward (when installed).

    python benchmarks/conv_dnnl.py [--net nets/squeezenet_v1.1/deploy.prototxt] [--batch 32] [--repeat 5]
"""
import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import firecaffe                                  # noqa: E402,F401
import numpy as np                                # noqa: E402

from cpu_net import build_param, make_firecaffe   # noqa: E402
from firecaffe.ops import dnnl                    # noqa: E402


def median_ms(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def layer_step(net, i):
    layer, bottom, top = net.layers[i], net.bottom_vecs[i], net.top_vecs[i]

    def step():
        layer.forward(bottom, top)
        layer.backward(top, [net.bottom_need_backward[i][0]], bottom)
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--net", default=os.path.join(ROOT, "nets", "squeezenet_v1.1", "deploy.prototxt"))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not dnnl.AVAILABLE:
        sys.exit(f"oneDNN not loaded: {dnnl.REASON}")
    net = make_firecaffe(build_param(args.net, args.batch, args.size))
    ref = make_firecaffe(build_param(args.net, args.batch, args.size, numpy_path=True))
    net.forward_backward()
    try:
        import torch
        F = torch.nn.functional
    except ImportError:
        torch = None
    print(f"{dnnl.VERSION}, batch {args.batch}, median ms of {args.repeat}, forward + backward per layer")
    print(f"{'layer':22s} {'impl':28s} {'firecaffe':>9s} {'oneDNN':>7s} {'glue':>5s} {'NumPy':>7s} {'torch':>7s}")
    sums = np.zeros(4)
    for i, layer in enumerate(net.layers):
        if layer.type != "Convolution":
            continue
        bare = [p.bare() for p in _geometry(layer)._prims.values()]
        step, np_step = layer_step(net, i), layer_step(ref, i)
        t_torch = None
        if torch is not None:
            x = torch.tensor(net.bottom_vecs[i][0].data, requires_grad=net.bottom_need_backward[i][0])
            w = torch.tensor(layer.blobs[0].data, requires_grad=True)
            b = torch.tensor(layer.blobs[1].data, requires_grad=True) if len(layer.blobs) > 1 else None
            dy = torch.tensor(net.top_vecs[i][0].diff)

            def torch_step():
                x.grad = w.grad = None
                if b is not None:
                    b.grad = None
                F.conv2d(x, w, b, layer.stride, layer.pad, layer.dilation, layer.group).backward(dy)
        t = {"fc": [], "bare": [], "np": [], "torch": []}
        for _ in range(args.repeat):
            t["fc"].append(median_ms(step, 1))
            t["bare"].append(sum(median_ms(run, 1) for run in bare))
            t["np"].append(median_ms(np_step, 1))
            if torch is not None:
                t["torch"].append(median_ms(torch_step, 1))
        fc, alone, numpy_ms = (statistics.median(t[k]) for k in ("fc", "bare", "np"))
        th = statistics.median(t["torch"]) if t["torch"] else float("nan")
        sums += [fc, alone, numpy_ms, th]
        impl = _geometry(layer).impl()
        print(f"{layer.name:22s} {impl[:28]:28s} {fc:9.2f} {alone:7.2f} {alone / fc:5.0%} {numpy_ms:7.2f} {th:7.2f}")
    print(f"{'all convolutions':51s} {sums[0]:9.1f} {sums[1]:7.1f} {sums[1] / sums[0]:5.0%} {sums[2]:7.1f} "
          f"{sums[3]:7.1f}")
    print("glue = oneDNN alone / firecaffe on oneDNN (1 would be no glue at all)")


def _geometry(layer):
    """The cached oneDNN geometry of a convolution layer, its primitives made by the warm-up."""
    found = []
    layer._on_dnnl(found.append)
    return found[0]


if __name__ == "__main__":
    main()
