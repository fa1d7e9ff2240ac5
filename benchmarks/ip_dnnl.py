"""InnerProduct on the CPU, forward + backward (data, weights, bias), at the
shapes of AlexNet's fc6/fc7/fc8 and LeNet's ip1/ip2, interleaved in one run:

- NumPy: the arithmetic of firecaffe's NumPy path (OpenBLAS matmuls; the weight
  gradient in a fresh array, then added), and the same with scratch arrays kept;
- oneDNN plain: oneDNN's inner product on the plain arrays (no reorder), the
  primitives of firecaffe/ops/dnnl/ip.py;
- oneDNN any: the same in the layouts oneDNN prefers, reorders included;
- PyTorch's F.linear forward + backward.

    python benchmarks/ip_dnnl.py [--batch 32] [--repeat 9]

The measurement that decided InnerProduct's engine (docs/performance.md).
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

from firecaffe.ops import dnnl                    # noqa: E402
from firecaffe.ops.dnnl import api                # noqa: E402
from firecaffe.ops.dnnl.ip import IPGeometry       # noqa: E402

SHAPES = [("alexnet fc6", 9216, 4096), ("alexnet fc7", 4096, 4096), ("alexnet fc8", 4096, 1000),
          ("lenet ip1", 800, 500), ("lenet ip2", 500, 10)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    if not dnnl.AVAILABLE:
        sys.exit(f"oneDNN not loaded: {dnnl.REASON}")
    try:
        import torch
    except ImportError:
        torch = None
    print(f"{dnnl.VERSION}, numpy {np.__version__}, batch {args.batch}, median ms of {args.repeat}, "
          f"forward + backward (data, weights, bias), interleaved")
    print(f"{'layer':12s} {'m x k x n':>18s} {'NumPy':>7s} {'NumPy out=':>10s} {'oneDNN plain':>12s} "
          f"{'oneDNN any':>10s} {'torch':>7s}  impl (plain ; any)")
    rng = np.random.default_rng(0)
    for label, k, n in SHAPES:
        m = args.batch
        x = rng.standard_normal((m, k), dtype=np.float32)
        w = rng.standard_normal((n, k), dtype=np.float32) * np.float32(0.01)
        b = rng.standard_normal(n, dtype=np.float32)
        dy = rng.standard_normal((m, n), dtype=np.float32)
        y, dx, dw = (np.empty(s, np.float32) for s in ((m, n), (m, k), (n, k)))
        wd, bd = np.zeros_like(w), np.zeros_like(b)

        def numpy_step():        # firecaffe/ops/inner_product.py's arithmetic
            np.matmul(x, w.T, out=y)
            y[...] += b
            wd[...] += dy.T @ x
            bd[...] += dy.sum(axis=0)
            dx[...] = dy @ w

        def numpy_out_step():    # the same with scratch buffers kept between calls
            np.matmul(x, w.T, out=y)
            y[...] += b
            np.matmul(dy.T, x, out=dw)
            wd[...] += dw
            bd[...] += dy.sum(axis=0)
            np.matmul(dy, w, out=dx)

        def dnnl_step(geo):
            def step():                  # firecaffe/ops/dnnl/ip.py's calls
                geo.forward({api.ARG_SRC: x, api.ARG_WEIGHTS: w, api.ARG_BIAS: b, api.ARG_DST: y})
                bwd_w, (dw, db) = geo.backward_weights()
                bwd_w({api.ARG_SRC: x, api.ARG_DIFF_DST: dy, api.ARG_DIFF_WEIGHTS: dw, api.ARG_DIFF_BIAS: db})
                wd[...] += dw            # Caffe accumulates, oneDNN overwrites
                bd[...] += db
                geo.backward_data()({api.ARG_DIFF_DST: dy, api.ARG_WEIGHTS: w, api.ARG_DIFF_SRC: dx})
            return step
        plain, blocked = IPGeometry(m, k, n, True, False), IPGeometry(m, k, n, True, False, "any")
        steps = {"numpy": numpy_step, "numpy_out": numpy_out_step, "plain": dnnl_step(plain), "any": dnnl_step(blocked)}
        if torch is not None:
            tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
            tdy = torch.tensor(dy)

            def torch_step():
                tx.grad = tw.grad = tb.grad = None
                torch.nn.functional.linear(tx, tw, tb).backward(tdy)
            steps["torch"] = torch_step
        # the same numbers on both paths, to float32 rounding
        steps["numpy"]()
        ref = (y.copy(), dx.copy())
        steps["plain"]()
        assert np.allclose(y, ref[0], rtol=1e-4, atol=1e-3) and np.allclose(dx, ref[1], rtol=1e-4, atol=1e-3)
        times = {key: [] for key in steps}
        for _ in range(args.repeat):
            for key, step in steps.items():
                t = time.perf_counter()
                step()
                times[key].append((time.perf_counter() - t) * 1e3)
        med = {key: statistics.median(v) for key, v in times.items()}
        impl = f"{plain.impl()} ; {blocked.impl()}"
        print(f"{label:12s} {f'{m}x{k}x{n}':>18s} {med['numpy']:7.2f} {med['numpy_out']:10.2f} {med['plain']:12.2f} {med['any']:10.2f} "
              f"{med.get('torch', float('nan')):7.2f}  {impl}")


if __name__ == "__main__":
    main()
