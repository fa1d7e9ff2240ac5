"""GPU benchmark: firecaffe (CuPy + firecaffe/kernels) against PyTorch (cuDNN) on
the same GPU in the same run, forward + backward of whole nets, per layer.

    python benchmarks/gpu_bench.py [--nets squeezenet_v1.1,googlenet] [--batch 64,128]
                                   [--iters 10] [--out DIR] [--no-torch]

Each net is its deploy.prototxt with the batch size set and the final Softmax
replaced by SoftmaxWithLoss on a random label (TRAIN phase: Dropout is on). The
PyTorch model is built from the same NetParameter, layer by layer (Convolution,
Pooling, ReLU, LRN, Concat, InnerProduct, Dropout, Softmax/SoftmaxWithLoss), and
its output shapes are checked against firecaffe's blobs. Also measured: the
cuBLAS SGEMM rate (cupy.matmul on large squares) and the im2col + GEMM
convolution rate as a fraction of it. Writes gpu_bench.json and gpu_bench.md
to --out (default $OUT, else the current directory).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def build_param(net_name, batch):
    from firecaffe.proto import caffe_pb2, io
    param = io.read_net(os.path.join(ROOT, "nets", net_name, "deploy.prototxt"))
    layers, label = [], None
    for src in param.layer:
        layer = caffe_pb2.LayerParameter()
        layer.CopyFrom(src)
        if layer.type == "Input":
            for shape in layer.input_param.shape:
                shape.dim[0] = batch
        if layer.type == "Softmax":
            label = caffe_pb2.LayerParameter(name="label", type="Input", top=["label"])
            label.input_param.shape.add().dim.extend([batch])
            layer.type = "SoftmaxWithLoss"
            layer.bottom.append("label")
            layer.top[:] = ["loss"]
        layers.append(layer)
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    del out.layer[:]
    out.layer.extend(([label] if label is not None else []) + layers)
    return out


# --- firecaffe ----------------------------------------------------------------------
def time_firecaffe(param, iters, warmup):
    import cupy
    from firecaffe.core import backend
    from firecaffe.engine.net import Net
    backend.set_mode_gpu(0)
    net = Net(param, phase="TRAIN")
    data = net.blobs["data"]
    data.data[...] = cupy.random.standard_normal(data.shape, dtype=cupy.float32)
    net.blobs["label"].data[...] = cupy.random.randint(0, 1000, net.blobs["label"].shape).astype(cupy.float32)
    for _ in range(warmup):
        net.clear_param_diffs()
        net.forward_backward()
    cupy.cuda.Device().synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        net.clear_param_diffs()
        net.forward_backward()
    cupy.cuda.Device().synchronize()
    total = (time.perf_counter() - start) / iters

    n = len(net.layers)
    fwd, bwd = np.zeros(n), np.zeros(n)
    for _ in range(max(1, iters // 2)):
        events = [(cupy.cuda.Event(), cupy.cuda.Event()) for _ in range(2 * n)]
        for i in range(n):
            events[i][0].record(); net.forward_layer(i); events[i][1].record()
        for i in reversed(range(n)):
            events[n + i][0].record(); net.backward_layer(i); events[n + i][1].record()
        events[-1][1].synchronize()
        cupy.cuda.Device().synchronize()
        fwd += [cupy.cuda.get_elapsed_time(a, b) for a, b in events[:n]]
        bwd += [cupy.cuda.get_elapsed_time(a, b) for a, b in events[n:]]
    runs = max(1, iters // 2)
    layers = []
    for i, layer in enumerate(net.layers):
        layers.append(dict(name=layer.name, type=layer.type, fwd_ms=fwd[i] / runs, bwd_ms=bwd[i] / runs,
                           flops=int(layer.flops(net.bottom_vecs[i], net.top_vecs[i]))))
    shapes = {name: tuple(blob.shape) for name, blob in net.blobs.items()}
    backend.set_mode_cpu()
    return dict(total_ms=total * 1e3, layers=layers), shapes


# --- PyTorch ------------------------------------------------------------------------------
class TorchNet:
    """The NetParameter as a list of (layer name, function on a dict of tensors)."""

    def __init__(self, param, shapes, device):
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
        self.steps, self.modules = [], nn.ModuleList()
        for lp in param.layer:
            kind, bottoms, tops = lp.type, list(lp.bottom), list(lp.top)
            if kind == "Input":
                continue
            if kind == "Convolution":
                p = lp.convolution_param
                def pair(values, h, w, default, p=p):
                    values = list(getattr(p, values)) if values else []
                    if p.HasField(h) or p.HasField(w):
                        return int(getattr(p, h)), int(getattr(p, w))
                    return (int(values[0]),) * 2 if values else (default,) * 2
                mod = nn.Conv2d(shapes[bottoms[0]][1], p.num_output, pair("kernel_size", "kernel_h", "kernel_w", 1),
                                stride=pair("stride", "stride_h", "stride_w", 1), padding=pair("pad", "pad_h", "pad_w", 0),
                                dilation=(list(p.dilation) or [1])[0], groups=p.group, bias=p.bias_term)
                fn = mod
            elif kind == "Pooling":
                p = lp.pooling_param
                if p.global_pooling:
                    k, s, pad = tuple(shapes[bottoms[0]][2:]), 1, 0
                else:
                    k = (p.kernel_h, p.kernel_w) if p.HasField("kernel_h") else p.kernel_size
                    s = (p.stride_h, p.stride_w) if p.HasField("stride_h") else p.stride
                    pad = (p.pad_h, p.pad_w) if p.HasField("pad_h") else p.pad
                ceil = p.round_mode != p.FLOOR
                if p.pool == p.MAX:
                    fn = lambda x, k=k, s=s, pad=pad, ceil=ceil: F.max_pool2d(x, k, s, pad, ceil_mode=ceil)
                else:
                    fn = lambda x, k=k, s=s, pad=pad, ceil=ceil: F.avg_pool2d(x, k, s, pad, ceil_mode=ceil,
                                                                           count_include_pad=True)
                mod = None
            elif kind == "ReLU":
                slope = lp.relu_param.negative_slope
                fn = (lambda x: F.relu(x)) if slope == 0 else (lambda x, a=slope: F.leaky_relu(x, a))
                mod = None
            elif kind == "LRN":
                p = lp.lrn_param
                mod = fn = nn.LocalResponseNorm(p.local_size, p.alpha, p.beta, p.k)
            elif kind == "Concat":
                axis = lp.concat_param.axis
                fn = lambda *xs, axis=axis: torch.cat(xs, dim=axis)
                mod = None
            elif kind == "InnerProduct":
                p = lp.inner_product_param
                mod = nn.Linear(int(np.prod(shapes[bottoms[0]][1:])), p.num_output, bias=p.bias_term)
                fn = lambda x, mod=mod: mod(x.flatten(1))
            elif kind == "Dropout":
                ratio = lp.dropout_param.dropout_ratio
                fn = lambda x, r=ratio: F.dropout(x, r, training=True)
                mod = None
            elif kind == "Softmax":
                fn = lambda x: F.softmax(x, dim=1)
                mod = None
            elif kind == "SoftmaxWithLoss":
                fn = lambda x, y: F.cross_entropy(x.flatten(1), y.long())
                mod = None
            else:
                raise NotImplementedError(f"gpu_bench: no PyTorch equivalent for layer type {kind}")
            if mod is not None:
                self.modules.append(mod)
            self.steps.append((lp.name, fn, bottoms, tops))
        self.modules.to(device)

    def forward(self, blobs, events=None):
        for index, (name, fn, bottoms, tops) in enumerate(self.steps):
            if events is not None:
                events[index][0].record()
            out = fn(*(blobs[b] for b in bottoms))
            if events is not None:
                events[index][1].record()
            blobs[tops[0]] = out
        return blobs


def time_torch(param, shapes, iters, warmup):
    import torch
    torch.backends.cudnn.benchmark = True
    device = torch.device("cuda")
    net = TorchNet(param, shapes, device)
    batch = shapes["data"][0]
    inputs = {"data": torch.randn(*shapes["data"], device=device),
              "label": torch.randint(0, 1000, (batch,), device=device).float()}
    mismatched = []
    blobs = net.forward(dict(inputs))
    for name, tensor in blobs.items():
        if name in shapes and tuple(tensor.shape) != shapes[name] and tensor.dim() > 0:
            mismatched.append(f"{name}: torch {tuple(tensor.shape)} vs firecaffe {shapes[name]}")

    def step():
        for p in net.modules.parameters():
            p.grad = None
        net.forward(dict(inputs))["loss"].backward()

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    torch.cuda.synchronize()
    total = (time.perf_counter() - start) / iters
    fwd = np.zeros(len(net.steps))
    runs = max(1, iters // 2)
    with torch.no_grad():
        for _ in range(runs):
            events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                      for _ in net.steps]
            net.forward(dict(inputs), events)
            torch.cuda.synchronize()
            fwd += [a.elapsed_time(b) for a, b in events]
    layers = {name: ms / runs for (name, _, _, _), ms in zip(net.steps, fwd)}
    return dict(total_ms=total * 1e3, fwd_ms_by_layer=layers, shape_mismatches=mismatched)


# --- GEMM rate ----------------------------------------------------------------------------
def sgemm_tflops(sizes=(4096, 8192), repeats=10):
    import cupy
    best = 0.0
    for n in sizes:
        a = cupy.random.standard_normal((n, n), dtype=cupy.float32)
        b = cupy.random.standard_normal((n, n), dtype=cupy.float32)
        cupy.matmul(a, b)
        cupy.cuda.Device().synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            cupy.matmul(a, b)
        cupy.cuda.Device().synchronize()
        best = max(best, 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e12)
    return best


def summarize(net_name, batch, fc, torch_result, peak):
    conv = [l for l in fc["layers"] if l["type"] == "Convolution"]
    conv_ms = sum(l["fwd_ms"] + l["bwd_ms"] for l in conv)
    conv_flops = 3 * sum(l["flops"] for l in conv)          # backward: data + weight gradients
    rate = conv_flops / (conv_ms * 1e-3) / 1e12 if conv_ms else 0.0
    row = dict(net=net_name, batch=batch, firecaffe_ms=fc["total_ms"],
               conv_tflops=rate, conv_fraction_of_sgemm=rate / peak if peak else None)
    if torch_result:
        row.update(torch_ms=torch_result["total_ms"], ratio=fc["total_ms"] / torch_result["total_ms"])
    return row


def write_report(out_dir, results):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "gpu_bench.json"), "w") as f:
        json.dump(results, f, indent=1)
    lines = [f"# GPU benchmark ({results['device']})", "",
             f"cuBLAS SGEMM: {results['sgemm_tflops']:.1f} TFLOP/s", "",
             "| net | batch | firecaffe fwd+bwd ms | PyTorch ms | ratio | conv TFLOP/s | of SGEMM |",
             "|---|---|---|---|---|---|---|"]
    for r in results["summary"]:
        lines.append(f"| {r['net']} | {r['batch']} | {r['firecaffe_ms']:.1f} | {r.get('torch_ms', float('nan')):.1f} "
                     f"| {r.get('ratio', float('nan')):.2f} | {r['conv_tflops']:.2f} "
                     f"| {100 * (r['conv_fraction_of_sgemm'] or 0):.0f}% |")
    for run in results["runs"]:
        lines += ["", f"## {run['net']}, batch {run['batch']}: per layer (ms)", "",
                  "| layer | type | firecaffe fwd | firecaffe bwd | PyTorch fwd | fwd ratio |", "|---|---|---|---|---|---|"]
        torch_fwd = (run.get("torch") or {}).get("fwd_ms_by_layer", {})
        for l in run["firecaffe"]["layers"]:
            t = torch_fwd.get(l["name"])
            lines.append(f"| {l['name']} | {l['type']} | {l['fwd_ms']:.3f} | {l['bwd_ms']:.3f} | "
                         + (f"{t:.3f} | {l['fwd_ms'] / t:.2f} |" if t else "- | - |"))
        for m in (run.get("torch") or {}).get("shape_mismatches", []):
            lines.append(f"\nshape mismatch (PyTorch model differs): {m}")
    with open(os.path.join(out_dir, "gpu_bench.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return "\n".join(lines[:6 + len(results["summary"])])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default="squeezenet_v1.1,googlenet")
    ap.add_argument("--batch", default="64,128")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out", default=os.environ.get("OUT") or ".")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    args = ap.parse_args(argv)
    import cupy
    props = cupy.cuda.runtime.getDeviceProperties(0)
    results = dict(device=props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"]),
                   cupy=cupy.__version__, sgemm_tflops=sgemm_tflops(), runs=[], summary=[])
    print(f"device {results['device']}, cuBLAS SGEMM {results['sgemm_tflops']:.1f} TFLOP/s", flush=True)
    use_torch = not args.no_torch
    if use_torch:
        try:
            import torch
            use_torch = torch.cuda.is_available()
            results["torch"] = torch.__version__
        except ImportError:
            print("PyTorch is not installed: firecaffe figures only", flush=True)
            use_torch = False
    for net_name in args.nets.split(","):
        for batch in (int(b) for b in args.batch.split(",")):
            param = build_param(net_name, batch)
            run = dict(net=net_name, batch=batch)
            try:
                run["firecaffe"], shapes = time_firecaffe(param, args.iters, args.warmup)
            except Exception as exc:         # keep going: one failure must not lose the others
                run["error"] = f"firecaffe: {type(exc).__name__}: {exc}"
                print(f"{net_name} batch {batch}: {run['error']}", flush=True)
                results["runs"].append(run)
                continue
            torch_result = None
            if use_torch:
                try:
                    torch_result = run["torch"] = time_torch(param, shapes, args.iters, args.warmup)
                except Exception as exc:
                    run["torch_error"] = f"{type(exc).__name__}: {exc}"
                    print(f"{net_name} batch {batch}: PyTorch failed: {run['torch_error']}", flush=True)
            results["runs"].append(run)
            row = summarize(net_name, batch, run["firecaffe"], torch_result, results["sgemm_tflops"])
            results["summary"].append(row)
            print(json.dumps(row), flush=True)
            cupy.get_default_memory_pool().free_all_blocks()
    print(write_report(args.out, results))


if __name__ == "__main__":
    main()
