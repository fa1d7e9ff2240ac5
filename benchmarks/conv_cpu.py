"""CPU convolution speed: firecaffe's Convolution layer against PyTorch's conv2d
(forward + backward, float32) on the convolutions of SqueezeNet v1.1 at batch 32,
and both against the machine's float32 GEMM rate (np.matmul, 1024^3).

    python benchmarks/conv_cpu.py [--batch 32] [--repeat 3] [--layers fire2/e3,conv10]

Conv layers are timed one by one; the "net" line sums them weighted by how often
each shape occurs in SqueezeNet v1.1. conv1 sees the data layer, so neither
side computes its input gradient (Caffe doesn't either).
"""
import argparse
import time

import numpy as np

from firecaffe.engine.testing import make_layer

# name, count in the net, (C, H), num_output, kernel, stride, pad
SQUEEZENET_V1_1 = [
    ("conv1", 1, (3, 227), 64, 3, 2, 0),
    ("fire2/squeeze", 1, (64, 56), 16, 1, 1, 0),
    ("fire3/squeeze", 1, (128, 56), 16, 1, 1, 0),
    ("fire2-3/expand1x1", 2, (16, 56), 64, 1, 1, 0),
    ("fire2-3/expand3x3", 2, (16, 56), 64, 3, 1, 1),
    ("fire4/squeeze", 1, (128, 28), 32, 1, 1, 0),
    ("fire5/squeeze", 1, (256, 28), 32, 1, 1, 0),
    ("fire4-5/expand1x1", 2, (32, 28), 128, 1, 1, 0),
    ("fire4-5/expand3x3", 2, (32, 28), 128, 3, 1, 1),
    ("fire6/squeeze", 1, (256, 14), 48, 1, 1, 0),
    ("fire7/squeeze", 1, (384, 14), 48, 1, 1, 0),
    ("fire6-7/expand1x1", 2, (48, 14), 192, 1, 1, 0),
    ("fire6-7/expand3x3", 2, (48, 14), 192, 3, 1, 1),
    ("fire8/squeeze", 1, (384, 14), 64, 1, 1, 0),
    ("fire9/squeeze", 1, (512, 14), 64, 1, 1, 0),
    ("fire8-9/expand1x1", 2, (64, 14), 256, 1, 1, 0),
    ("fire8-9/expand3x3", 2, (64, 14), 256, 3, 1, 1),
    ("conv10", 1, (512, 14), 1000, 1, 1, 0),
]


def best_time(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def gemm_rate(n=1024, repeat=10):
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = a.T.copy()
    return 2 * n ** 3 / best_time(lambda: np.matmul(a, b), repeat)


def firecaffe_step(batch, shape, num_output, kernel, stride, pad, data_grad):
    c, h = shape
    x = np.random.default_rng(0).standard_normal((batch, c, h, h), dtype=np.float32)
    layer, bottom, top = make_layer(
        f'type: "Convolution" convolution_param {{ num_output: {num_output} kernel_size: {kernel} '
        f'stride: {stride} pad: {pad} weight_filler {{ type: "msra" }} }}', [x], dtype=np.float32)
    top[0].diff[...] = np.random.default_rng(1).standard_normal(top[0].shape, dtype=np.float32)

    def step():
        layer.forward(bottom, top)
        layer.backward(top, [data_grad], bottom)
    return step, layer.flops(bottom, top)


def torch_step(torch, batch, shape, num_output, kernel, stride, pad, data_grad):
    c, h = shape
    x = torch.randn(batch, c, h, h, requires_grad=data_grad)
    w = torch.randn(num_output, c, kernel, kernel, requires_grad=True)
    b = torch.randn(num_output, requires_grad=True)
    grad = torch.randn_like(torch.nn.functional.conv2d(x, w, b, stride=stride, padding=pad))

    def step():
        torch.nn.functional.conv2d(x, w, b, stride=stride, padding=pad).backward(grad)
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--layers", default="", help="comma-separated names (default: all)")
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        torch = None
    gemm = gemm_rate()
    print(f"float32 GEMM (np.matmul 1024^3): {gemm / 1e9:.1f} GFLOP/s")
    print(f"{'layer':20s} {'x':>2s} {'firecaffe ms':>12s} {'GFLOP/s':>8s} {'of GEMM':>8s} {'torch ms':>9s} {'ratio':>6s}")
    total_ours = total_torch = total_flops = 0.0
    wanted = set(filter(None, args.layers.split(",")))
    for name, count, shape, num_output, kernel, stride, pad in SQUEEZENET_V1_1:
        if wanted and name not in wanted:
            continue
        data_grad = name != "conv1"
        step, fwd_flops = firecaffe_step(args.batch, shape, num_output, kernel, stride, pad, data_grad)
        flops = fwd_flops * (3 if data_grad else 2)      # forward, weight grad, data grad
        ours = best_time(step, args.repeat)
        theirs = best_time(torch_step(torch, args.batch, shape, num_output, kernel, stride, pad, data_grad),
                           args.repeat) if torch else float("nan")
        total_ours += count * ours
        total_torch += count * theirs
        total_flops += count * flops
        print(f"{name:20s} {count:2d} {ours * 1e3:12.2f} {flops / ours / 1e9:8.1f} {flops / ours / gemm:8.0%} "
              f"{theirs * 1e3:9.2f} {ours / theirs:6.2f}")
    print(f"{'net (weighted sum)':20s} {'':2s} {total_ours * 1e3:12.2f} {total_flops / total_ours / 1e9:8.1f} "
          f"{total_flops / total_ours / gemm:8.0%} {total_torch * 1e3:9.2f} {total_ours / total_torch:6.2f}")
    print("ratio = firecaffe time / torch time (below 1: firecaffe is faster)")


if __name__ == "__main__":
    main()
