"""BatchNorm on ResNet-50's shapes (batch 16, batch statistics, forward + backward):
oneDNN 3.2's batch normalization on the plain nchw arrays against firecaffe's
BatchNorm layer on its blocked passes and on its reference passes, interleaved,
median ms; also oneDNN's choice of kernel (its jit kernels want nChw16c or nhwc,
whose reorders would come on top), and one copy of the activation: what a layer on
oneDNN would add to keep its input (in place, Caffe's BatchNorm overwrites it and its
backward needs it; the blocked layer keeps x_norm, a copy inside its time). Which
BatchNorm runs and why: docs/architecture.md.

    python benchmarks/bn_dnnl.py [--repeat 7] [--batch 16]
"""
import argparse
import ctypes
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import firecaffe                                       # noqa: E402,F401
import numpy as np                                     # noqa: E402

from firecaffe.engine.testing import make_layer        # noqa: E402
from firecaffe.ops import dnnl                         # noqa: E402
from firecaffe.ops.dnnl import api                     # noqa: E402
from firecaffe.ops.dnnl.prim import MemoryDesc, Primitive, PrimitiveDesc   # noqa: E402

SHAPES = [(64, 112, 112), (256, 56, 56), (128, 28, 28), (512, 28, 28), (1024, 14, 14), (2048, 7, 7)]
BACKWARD_DATA, ARG_MEAN, ARG_VARIANCE = 160, 49, 50     # dnnl_backward_data, DNNL_ARG_MEAN, DNNL_ARG_VARIANCE


def dnnl_bn(shape, eps=1e-5):
    """oneDNN forward (training) and backward-data primitives on plain arrays, no scale or shift."""
    lib, P = api.LIB, api.P
    lib.dnnl_batch_normalization_forward_primitive_desc_create.argtypes = \
        [P, P, ctypes.c_int, P, P, ctypes.c_float, ctypes.c_uint, P]
    lib.dnnl_batch_normalization_backward_primitive_desc_create.argtypes = \
        [P, P, ctypes.c_int, P, P, P, ctypes.c_float, ctypes.c_uint, P, P]
    d, c = MemoryDesc(shape), MemoryDesc(shape[1:2])
    fwd = PrimitiveDesc(lambda out: api.call("dnnl_batch_normalization_forward_primitive_desc_create", out,
                                             api.ENGINE, api.FORWARD_TRAINING, d.handle, d.handle, eps, 0, None))
    bwd = PrimitiveDesc(lambda out: api.call("dnnl_batch_normalization_backward_primitive_desc_create", out,
                                             api.ENGINE, BACKWARD_DATA, d.handle, d.handle, d.handle, eps, 0,
                                             fwd.handle, None))
    f = Primitive(fwd, {api.ARG_SRC: (d, False), api.ARG_DST: (d, True),
                        ARG_MEAN: (c, True), ARG_VARIANCE: (c, True)})
    b = Primitive(bwd, {api.ARG_SRC: (d, False), api.ARG_DIFF_DST: (d, False), ARG_MEAN: (c, False),
                        ARG_VARIANCE: (c, False), api.ARG_DIFF_SRC: (d, True)})
    return f, b, (d, c)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    if not dnnl.AVAILABLE:
        sys.exit(f"oneDNN not loaded: {dnnl.REASON}")
    print(f"{dnnl.VERSION}; numpy {np.__version__}; batch {args.batch}; median of {args.repeat} "
          f"interleaved, ms, forward + backward")
    print("| shape | oneDNN kernel | oneDNN | blocked | reference | copy | max error of y against float64: oneDNN, blocked |")
    print("|---|---|---|---|---|---|---|")
    for chw in SHAPES:
        shape = (args.batch,) + chw
        rng = np.random.default_rng(0)
        x = (rng.standard_normal(shape, dtype=np.float32) * 3 + 1)
        dy = rng.standard_normal(shape, dtype=np.float32)
        f, b, keep = dnnl_bn(shape)
        y, dx = np.empty_like(x), np.empty_like(x)
        mean, var = np.empty(shape[1], np.float32), np.empty(shape[1], np.float32)

        def on_dnnl():
            f({api.ARG_SRC: x, api.ARG_DST: y, ARG_MEAN: mean, ARG_VARIANCE: var})
            b({api.ARG_SRC: x, api.ARG_DIFF_DST: dy, ARG_MEAN: mean, ARG_VARIANCE: var, api.ARG_DIFF_SRC: dx})

        layers = {}
        for name, blocked in (("blocked", True), ("reference", False)):
            layer, bottom, top = make_layer('type: "BatchNorm"', [x], dtype=np.float32)
            layer.blocked = blocked

            top[0].diff[...] = dy                 # out of place: backward leaves it as it is

            def run(layer=layer, bottom=bottom, top=top):
                layer.forward(bottom, top)
                layer.backward(top, [True], bottom)
            layers[name] = (run, top, bottom)
        kept = np.empty_like(x)
        steps = {"oneDNN": on_dnnl, "blocked": layers["blocked"][0], "reference": layers["reference"][0],
                 "copy": lambda: np.copyto(kept, x)}
        times = {k: [] for k in steps}
        for _ in range(args.repeat):
            for name, step in steps.items():
                t = time.perf_counter()
                step()
                times[name].append((time.perf_counter() - t) * 1e3)
        _, top, bottom = layers["blocked"]
        x64 = x.astype(np.float64)
        centred = x64 - x64.mean(axis=(0, 2, 3), keepdims=True)
        exact = centred / np.sqrt((centred ** 2).mean(axis=(0, 2, 3), keepdims=True) + 1e-5)
        diff = (float(np.abs(y - exact).max()), float(np.abs(top[0].data - exact).max()))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"| {shape} | {f.impl} / {b.impl} | {med['oneDNN']:.1f} | {med['blocked']:.1f} | "
              f"{med['reference']:.1f} | {med['copy']:.1f} | {diff[0]:.1e}, {diff[1]:.1e} |")


if __name__ == "__main__":
    main()
