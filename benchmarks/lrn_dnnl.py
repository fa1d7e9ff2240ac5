"""LRN on the CPU, forward + backward, firecaffe's layer on oneDNN against the
same layer on its NumPy path (``engine: CAFFE``) and PyTorch's
local_response_norm (ACROSS_CHANNELS only), interleaved in one run, at the
shapes of AlexNet's norm1/norm2 and GoogLeNet's two LRN layers (batch 32), and
one WITHIN_CHANNEL case.

    python benchmarks/lrn_dnnl.py [--batch 32] [--repeat 7]
"""
import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import firecaffe                                  # noqa: E402,F401
import numpy as np                                # noqa: E402

from firecaffe.engine.testing import make_layer   # noqa: E402
from firecaffe.ops import dnnl                    # noqa: E402
from firecaffe.ops.dnnl import lrn as dnnl_lrn    # noqa: E402

CASES = [("alexnet norm1", (96, 55, 55), "local_size: 5 alpha: 0.0001 beta: 0.75"),
         ("alexnet norm2", (256, 27, 27), "local_size: 5 alpha: 0.0001 beta: 0.75"),
         ("googlenet norm1", (64, 56, 56), "local_size: 5 alpha: 0.0001 beta: 0.75"),
         ("googlenet norm2", (192, 56, 56), "local_size: 5 alpha: 0.0001 beta: 0.75"),
         ("within 3x3", (64, 56, 56), "local_size: 3 alpha: 0.0001 beta: 0.75 norm_region: WITHIN_CHANNEL")]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    if not dnnl.AVAILABLE:
        sys.exit(f"oneDNN not loaded: {dnnl.REASON}")
    try:
        import torch
    except ImportError:
        torch = None
    print(f"{dnnl.VERSION}, batch {args.batch}, median ms of {args.repeat}, forward + backward, interleaved")
    print(f"{'layer':16s} {'oneDNN':>8s} {'NumPy':>8s} {'torch':>8s}  impl")
    rng = np.random.default_rng(0)
    for label, shape, params in CASES:
        x = rng.standard_normal((args.batch,) + shape, dtype=np.float32)
        dy = rng.standard_normal(x.shape, dtype=np.float32)
        steps, layers = {}, {}
        for key, extra in (("dnnl", ""), ("numpy", " engine: CAFFE")):
            layer, bottom, top = make_layer(f'type: "LRN" lrn_param {{ {params}{extra} }}', [x],
                                            dtype=np.float32)
            top[0].diff[...] = dy
            layers[key] = layer

            def step(layer=layer, bottom=bottom, top=top):
                layer.forward(bottom, top)
                layer.backward(top, [True], bottom)
            steps[key] = step
        if torch is not None and "WITHIN" not in params:
            tx, tdy = torch.tensor(x, requires_grad=True), torch.tensor(dy)

            def torch_step():
                tx.grad = None
                torch.nn.functional.local_response_norm(tx, 5, alpha=1e-4, beta=0.75, k=1.0).backward(tdy)
            steps["torch"] = torch_step
        for step in steps.values():
            step()
        times = {key: [] for key in steps}
        for _ in range(args.repeat):
            for key, step in steps.items():
                t = time.perf_counter()
                step()
                times[key].append((time.perf_counter() - t) * 1e3)
        med = {key: statistics.median(v) for key, v in times.items()}
        geo = dnnl_lrn._geometry(layers["dnnl"], x)
        print(f"{label:16s} {med['dnnl']:8.2f} {med['numpy']:8.2f} {med.get('torch', float('nan')):8.2f}  "
              f"{geo.forward.impl} / {geo.backward.impl}")


if __name__ == "__main__":
    main()
