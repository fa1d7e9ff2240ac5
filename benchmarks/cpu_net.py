"""CPU whole-net speed: one forward + backward of SqueezeNet v1.1 (batch 32,
3x224x224, float32) with firecaffe (its CPU engine: oneDNN where it loaded),
firecaffe on its NumPy path (every layer, as FIRECAFFE_DNNL_LIB=off),
optionally firecaffe with BatchNorm and Scale on their unblocked reference passes
(--unblocked), firecaffe without ReLU fused into convolutions (--unfused), firecaffe with
BatchNorm -> Scale -> ReLU as separate layers instead of one chain (--unfused-norm), and PyTorch CPU, in the same run, interleaved, and the ratios of their medians.

    python benchmarks/cpu_net.py [--batch 32] [--size 224] [--repeat 7] [--layers 12]
                                 [--net nets/squeezenet_v1.1/deploy.prototxt]
    python benchmarks/cpu_net.py --write-prototxt squeezenet_b32_loss.prototxt   # the same net for `caffe time`

The net is the deploy.prototxt with the input resized, Dropout left out (both
sides), and the final Softmax turned into SoftmaxWithLoss on a random label.
The PyTorch model is built from the same NetParameter (conv, ReLU, pooling with
ceil_mode, concat, LRN across channels, inner product, batch norm on batch
statistics, scale, element-wise sum, cross entropy), gets firecaffe's weights,
and its loss is checked against firecaffe's. BatchNorm runs on batch statistics
(use_global_stats false: training) on both sides. The NumPy path is every
layer's NumPy path (``engine: CAFFE`` on convolutions and LRN, oneDNN off for
pooling and InnerProduct): the arithmetic of FIRECAFFE_DNNL_LIB=off. Also printed: the float32 GEMM rate (np.matmul on
2048^2 and on the GEMM shapes of the 3x3 expand convolutions), firecaffe's
per-layer times (top layers), and the convolutions' rate as a share of GEMM.
Timings on a shared machine are noisy: read the medians and the ratio.
"""
import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# firecaffe before numpy, as in the `firecaffe` command: it sets OpenBLAS's thread
# timeout, which only works before numpy loads OpenBLAS (firecaffe/__init__.py)
import firecaffe                                 # noqa: E402,F401
import numpy as np                               # noqa: E402

from firecaffe.engine.net import Net                    # noqa: E402
from firecaffe.proto import caffe_pb2, io        # noqa: E402


def build_param(path, batch, size, numpy_path=False):
    param = io.read_net(path)
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    del out.layer[:]
    label = out.layer.add(name="label", type="Input", top=["label"])
    label.input_param.shape.add().dim.extend([batch])
    for src in param.layer:
        if src.type == "Dropout":
            continue
        layer = out.layer.add()
        layer.CopyFrom(src)
        if layer.type == "Input":
            dims = layer.input_param.shape[0].dim
            dims[0] = batch
            dims[2:] = [size, size]
        if layer.type == "Softmax":
            layer.type = "SoftmaxWithLoss"
            layer.bottom.append("label")
            layer.top[:] = ["loss"]
        if layer.type == "BatchNorm":        # training: batch statistics, as the PyTorch twin
            layer.batch_norm_param.use_global_stats = False
        if numpy_path and layer.type in ("Convolution", "Deconvolution"):
            layer.convolution_param.engine = caffe_pb2.ConvolutionParameter.CAFFE
        if numpy_path and layer.type == "LRN":
            layer.lrn_param.engine = caffe_pb2.LRNParameter.CAFFE
    return out


def make_firecaffe(param, seed=0):
    net = Net(param, phase="TRAIN", dtype=np.float32)
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if layer.type == "BatchNorm":       # running statistics, unused in training
            continue
        if layer.type == "Scale":
            layer.blobs[0].data[...] = 1
            if len(layer.blobs) > 1:
                layer.blobs[1].data[...] = 0
            continue
        if layer.blobs:
            w = layer.blobs[0]
            fan_in = w.count // w.shape[0]
            w.data[...] = rng.standard_normal(w.shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))
            if len(layer.blobs) > 1:
                layer.blobs[1].data[...] = np.float32(0.01)
    net.blobs["data"].data[...] = rng.standard_normal(net.blobs["data"].shape, dtype=np.float32)
    net.blobs["label"].data[...] = rng.integers(0, 1000, net.blobs["label"].shape)
    return net


def _pair(p, name, default):
    h, w = (f"{name}_h", f"{name}_w") if name != "kernel_size" else ("kernel_h", "kernel_w")
    if p.HasField(h) or p.HasField(w):
        return int(getattr(p, h)), int(getattr(p, w))
    value = getattr(p, name)
    if isinstance(value, int):
        return (value,) * 2 if p.HasField(name) else (default,) * 2
    return (int(value[0]),) * 2 if len(value) else (default,) * 2


class TorchNet:
    """The NetParameter as (name, function, bottoms, top) steps over a dict of tensors."""

    def __init__(self, torch, param, net):
        F = torch.nn.functional
        self.steps, self.params = [], []
        for lp in param.layer:
            kind, bottoms = lp.type, list(lp.bottom)
            if kind == "Input":
                continue
            if kind == "Convolution":
                p = lp.convolution_param
                w, b = self._weights(torch, net.layer_dict[lp.name].blobs)
                fn = (lambda x, w=w, b=b, s=_pair(p, "stride", 1), q=_pair(p, "pad", 0),
                      d=(list(p.dilation) or [1])[0], g=p.group: F.conv2d(x, w, b, s, q, d, g))
            elif kind == "Pooling":
                p = lp.pooling_param
                k, s, q = _pair(p, "kernel_size", 1), _pair(p, "stride", 1), _pair(p, "pad", 0)
                if p.global_pooling:
                    fn = lambda x: x.mean(dim=(2, 3), keepdim=True)
                elif p.pool == p.MAX:
                    fn = lambda x, k=k, s=s, q=q, c=p.round_mode != p.FLOOR: F.max_pool2d(x, k, s, q, ceil_mode=c)
                else:
                    fn = lambda x, k=k, s=s, q=q, c=p.round_mode != p.FLOOR: F.avg_pool2d(x, k, s, q, ceil_mode=c)
            elif kind == "ReLU":
                fn = F.relu
            elif kind == "Concat":
                fn = lambda *xs, axis=lp.concat_param.axis: torch.cat(xs, dim=axis)
            elif kind == "LRN":
                p = lp.lrn_param
                if p.norm_region != p.ACROSS_CHANNELS:
                    raise NotImplementedError("cpu_net: LRN within a channel has no PyTorch equivalent")
                fn = (lambda x, n=p.local_size, a=p.alpha, b=p.beta, k=p.k:
                      F.local_response_norm(x, n, alpha=a, beta=b, k=k))
            elif kind == "InnerProduct":
                p = lp.inner_product_param
                w, b = self._weights(torch, net.layer_dict[lp.name].blobs)
                fn = (lambda x, w=w, b=b, t=p.transpose, axis=p.axis:
                      F.linear(x.flatten(axis), w.t() if t else w, b))
            elif kind == "BatchNorm":
                fn = lambda x, eps=lp.batch_norm_param.eps: F.batch_norm(x, None, None, training=True, eps=eps)
            elif kind == "Scale":
                g, b = self._weights(torch, net.layer_dict[lp.name].blobs)
                fn = (lambda x, g=g, b=b: x * g[:, None, None] + b[:, None, None] if b is not None
                      else x * g[:, None, None])
            elif kind == "Eltwise":
                p = lp.eltwise_param
                if p.operation != p.SUM or any(c != 1 for c in p.coeff):
                    raise NotImplementedError("cpu_net: only Eltwise SUM without coefficients")
                fn = lambda *xs: sum(xs[1:], xs[0])
            elif kind == "SoftmaxWithLoss":
                fn = lambda x, y: F.cross_entropy(x.flatten(1), y.long())
            else:
                raise NotImplementedError(f"cpu_net: no PyTorch equivalent for layer type {kind}")
            self.steps.append((lp.name, fn, bottoms, lp.top[0]))

    def _weights(self, torch, blobs):
        """The layer's weight and bias (None without one) as leaf tensors, kept in ``params``."""
        w = torch.tensor(blobs[0].data, requires_grad=True)
        b = torch.tensor(blobs[1].data, requires_grad=True) if len(blobs) > 1 else None
        self.params += [w] + ([b] if b is not None else [])
        return w, b

    def forward(self, blobs):
        for _, fn, bottoms, top in self.steps:
            blobs[top] = fn(*(blobs[b] for b in bottoms))
        return blobs


def gemm_rates(conv_shapes, repeat=5):
    """np.matmul float32 GFLOP/s: 2048^2 squares and (M, K) x (K, N) conv-like shapes."""
    rng = np.random.default_rng(0)
    rates = {}
    for m, k, n in [(2048, 2048, 2048)] + conv_shapes:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        out = np.empty((m, n), dtype=np.float32)
        np.matmul(a, b, out=out)
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            np.matmul(a, b, out=out)
            times.append(time.perf_counter() - t)
        rates[(m, k, n)] = 2 * m * k * n / statistics.median(times) / 1e9
    return rates


def per_layer_times(net, iters):
    n = len(net.layers)
    fwd, bwd = np.zeros((iters, n)), np.zeros((iters, n))
    for it in range(iters):
        net.clear_param_diffs()
        for i in range(n):
            t = time.perf_counter()
            net.forward_layer(i)
            fwd[it, i] = time.perf_counter() - t
        for i in reversed(range(n)):
            t = time.perf_counter()
            net.backward_layer(i)
            bwd[it, i] = time.perf_counter() - t
    return np.median(fwd, axis=0) * 1e3, np.median(bwd, axis=0) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--net", default=os.path.join(ROOT, "nets", "squeezenet_v1.1", "deploy.prototxt"))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--layers", type=int, default=12, help="rows of the per-layer table")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-numpy", action="store_true", help="leave out firecaffe's NumPy path")
    parser.add_argument("--unblocked", action="store_true",
                        help="add firecaffe with BatchNorm and Scale on their reference (unblocked) passes")
    parser.add_argument("--unfused", action="store_true",
                        help="add firecaffe without the ReLU fused into its convolution (FIRECAFFE_FUSE_RELU=0)")
    parser.add_argument("--unfused-norm", action="store_true",
                        help="add firecaffe with BatchNorm, Scale and ReLU as separate layers instead of one chain "
                             "(FIRECAFFE_FUSE_NORM=0)")
    parser.add_argument("--dnnl-wgrad", action="store_true",
                        help="add firecaffe with the 1x1 layers' weight gradients on oneDNN's gemm convolution "
                             "instead of OpenBLAS (ops/conv.py PLAIN_WEIGHT_GRAD_ON_BLAS off)")
    parser.add_argument("--write-prototxt", metavar="PATH",
                        help="only write the net as timed (input resized, no Dropout, SoftmaxWithLoss on a label "
                             "Input) to PATH, for `caffe time` (benchmarks/caffe_time_peer.sh), and stop")
    args = parser.parse_args()
    if args.write_prototxt:
        from google.protobuf import text_format
        with open(args.write_prototxt, "w") as f:
            f.write(text_format.MessageToString(build_param(args.net, args.batch, args.size)))
        print(f"{args.write_prototxt}: {args.net} at batch {args.batch}, {args.size}x{args.size}, with its loss")
        return

    try:
        import threadpoolctl
        for info in threadpoolctl.threadpool_info():
            print(f"BLAS: {info.get('internal_api')} {info.get('version')} {info.get('architecture')} "
                  f"threads={info.get('num_threads')}")
    except ImportError:
        pass
    print(f"numpy {np.__version__}, cpu_count {os.cpu_count()}, "
          f"OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT', '(default)')}")
    from firecaffe.ops import dnnl
    print(f"oneDNN: {dnnl.VERSION if dnnl.AVAILABLE else 'not loaded: ' + str(dnnl.REASON)}; "
          f"MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_', '(default)')} "
          f"MALLOC_TRIM_THRESHOLD_={os.environ.get('MALLOC_TRIM_THRESHOLD_', '(default)')}")
    param = build_param(args.net, args.batch, args.size)
    if args.unfused:
        os.environ["FIRECAFFE_FUSE_RELU"] = "1"     # firecaffe fused, against the unfused twin below
    net = make_firecaffe(param)
    np_net = None
    if dnnl.AVAILABLE and not args.no_numpy:
        np_net = make_firecaffe(build_param(args.net, args.batch, args.size, numpy_path=True))
        for layer in np_net.layers:      # pooling and InnerProduct too: as FIRECAFFE_DNNL_LIB=off
            if hasattr(layer, "use_dnnl"):
                layer.use_dnnl = False

    def fc_step(which=net):
        which.clear_param_diffs()
        return which.forward_backward()

    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("PyTorch not installed: firecaffe only")
    if torch is not None:
        print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
        tnet = TorchNet(torch, param, net)
        inputs = {"data": torch.tensor(net.blobs["data"].data), "label": torch.tensor(net.blobs["label"].data)}

        def torch_step():
            for p in tnet.params:
                p.grad = None
            loss = tnet.forward(dict(inputs))["loss"]
            loss.backward()
            return float(loss.detach())

        ours, theirs = fc_step(), torch_step()
        print(f"loss: firecaffe {ours:.6f}  torch {theirs:.6f}"
              + (f"  firecaffe NumPy path {fc_step(np_net):.6f}" if np_net is not None else ""))
        if not np.isclose(ours, theirs, rtol=1e-3):
            print("WARNING: the two nets disagree")

    # whole net, interleaved
    fc_step()
    steps = {"firecaffe": lambda: fc_step()}
    if np_net is not None:
        steps["NumPy"] = lambda: fc_step(np_net)
    if args.unblocked:
        ub_net = make_firecaffe(param)
        for layer in ub_net.layers:
            if hasattr(layer, "blocked"):      # BatchNorm and Scale: ops/_channels.Blocked
                layer.blocked = False
        print(f"loss: firecaffe unblocked {fc_step(ub_net):.6f}")
        steps["unblocked"] = lambda: fc_step(ub_net)
    if args.unfused:
        os.environ["FIRECAFFE_FUSE_RELU"] = "0"     # read when the net is built (engine/fusion.py)
        uf_net = make_firecaffe(param)
        del os.environ["FIRECAFFE_FUSE_RELU"]
        print(f"ReLUs fused: {len(net.relu_fusion)} (unfused net: {len(uf_net.relu_fusion)}); "
              f"loss: firecaffe {fc_step():.6f} unfused {fc_step(uf_net):.6f}")
        steps["unfused"] = lambda: fc_step(uf_net)
    if args.unfused_norm:
        saved = os.environ.get("FIRECAFFE_FUSE_NORM")
        os.environ["FIRECAFFE_FUSE_NORM"] = "0"     # read when the net is built (engine/fusion.py)
        un_net = make_firecaffe(param)
        if saved is None:
            del os.environ["FIRECAFFE_FUSE_NORM"]
        else:
            os.environ["FIRECAFFE_FUSE_NORM"] = saved
        print(f"BatchNorm chains: {len(net.norm_chain)} (separate-layer net: {len(un_net.norm_chain)}); "
              f"loss: firecaffe {fc_step():.6f} separate {fc_step(un_net):.6f}")
        steps["unfused-norm"] = lambda: fc_step(un_net)
    if args.dnnl_wgrad:
        from firecaffe.ops import conv as conv_ops
        wg_net = make_firecaffe(param)

        def dnnl_wgrad_step():
            conv_ops.PLAIN_WEIGHT_GRAD_ON_BLAS = False
            try:
                return fc_step(wg_net)
            finally:
                conv_ops.PLAIN_WEIGHT_GRAD_ON_BLAS = True
        print(f"loss: firecaffe {fc_step():.6f} 1x1 weight gradients on oneDNN {dnnl_wgrad_step():.6f}")
        steps["dnnl-wgrad"] = dnnl_wgrad_step
    if torch is not None:
        steps["torch"] = torch_step
    wall = {k: [] for k in steps}
    cpu = {k: [] for k in steps}
    for _ in range(args.repeat):
        for name, step in steps.items():
            t, c = time.perf_counter(), time.process_time()
            step()
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    med = {k: statistics.median(v) * 1e3 for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) * 1e3 for k, v in cpu.items()}
    print(f"\nforward+backward, batch {args.batch}, {args.size}x{args.size}, median of {args.repeat} "
          f"(wall ms; CPU ms of the process, all threads):")
    for name in steps:
        print(f"  {name:9s} {med[name]:8.1f} ms  CPU {med_cpu[name]:8.1f} ms   "
              f"(all: {' '.join(f'{t * 1e3:.0f}' for t in wall[name])})")
    for peer in steps:
        if peer != "firecaffe":
            pairs = statistics.median(a / b for a, b in zip(wall["firecaffe"], wall[peer]))
            print(f"  ratio firecaffe/{peer}: wall {med['firecaffe'] / med[peer]:.2f}, "
                  f"CPU {med_cpu['firecaffe'] / med_cpu[peer]:.2f}, "
                  f"median of the {args.repeat} interleaved pairs {pairs:.2f}")

    # per layer (firecaffe) and the convolutions' share of the GEMM rate
    fwd, bwd = per_layer_times(net, max(3, args.repeat // 2))
    convs = [i for i, layer in enumerate(net.layers) if layer.type == "Convolution"]
    shapes = []
    for i in convs:
        layer = net.layers[i]
        if layer.kernel == (3, 3) and layer.stride == (1, 1):
            L = int(np.prod(layer.out_spatial))
            shapes.append((layer.num_output, layer.channels * 9, args.batch * L))
    rates = gemm_rates(sorted(set(shapes)))
    peak = rates[(2048, 2048, 2048)]
    print("\nnp.matmul float32 GFLOP/s:")
    for (m, k, n), r in rates.items():
        print(f"  {m:5d} x {k:5d} x {n:7d}: {r:7.1f}")
    total = fwd.sum() + bwd.sum()
    print(f"\nper layer (firecaffe, median ms; sum {total:.1f}):")
    print(f"  {'layer':24s} {'type':16s} {'fwd':>7s} {'bwd':>7s} {'share':>6s} {'GFLOP/s':>8s} {'of GEMM':>7s}")
    order = np.argsort(-(fwd + bwd))
    for i in order[:args.layers]:
        layer = net.layers[i]
        line = f"  {layer.name:24s} {layer.type:16s} {fwd[i]:7.2f} {bwd[i]:7.2f} {(fwd[i] + bwd[i]) / total:6.1%}"
        if layer.type == "Convolution":
            flops = layer.flops(net.bottom_vecs[i], net.top_vecs[i]) * (3 if net.bottom_need_backward[i][0] else 2)
            rate = flops / ((fwd[i] + bwd[i]) * 1e-3) / 1e9
            line += f" {rate:8.1f} {rate / peak:7.0%}"
        print(line)
    by_type = {}
    for i, layer in enumerate(net.layers):
        by_type[layer.type] = by_type.get(layer.type, 0.0) + fwd[i] + bwd[i]
    print("  by type: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(by_type.items(), key=lambda kv: -kv[1])))
    conv_ms = sum(fwd[i] + bwd[i] for i in convs)
    conv_flops = sum(net.layers[i].flops(net.bottom_vecs[i], net.top_vecs[i])
                     * (3 if net.bottom_need_backward[i][0] else 2) for i in convs)
    rate = conv_flops / (conv_ms * 1e-3) / 1e9
    print(f"\nconvolutions: {conv_ms:.1f} ms, {conv_flops / 1e9:.1f} GFLOP, {rate:.1f} GFLOP/s "
          f"= {rate / peak:.0%} of the 2048^2 GEMM rate")


if __name__ == "__main__":
    main()
