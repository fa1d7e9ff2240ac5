"""Per-layer report of a net: output shapes, parameters, bytes, forward FLOPs.

``params`` counts every element of every parameter blob of every layer, as
Caffe's net.params does (BatchNorm's mean, variance and scale factor included);
a blob shared between layers is counted once.
"""
def analyze(net):
    """A dict with totals ``params``, ``param_bytes``, ``flops`` and per-layer rows."""
    rows = []
    seen = set()
    total_params = total_flops = 0
    for layer, bottom, top in zip(net.layers, net.bottom_vecs, net.top_vecs):
        if layer.type == "Split":
            continue
        fresh = [b for b in layer.blobs if id(b.data) not in seen and not hasattr(b, "owner")]
        seen.update(id(b.data) for b in layer.blobs)
        params = sum(b.count for b in fresh)
        flops = int(layer.flops(bottom, top))
        rows.append({
            "name": layer.name,
            "type": layer.type,
            "top_shapes": [list(t.shape) for t in top],
            "params": params,
            "param_bytes": params * net.dtype.itemsize,
            "param_shapes": [list(b.shape) for b in fresh],
            "flops": flops,
            "activations": int(sum(t.count for t in top)),
        })
        total_params += params
        total_flops += flops
    batch = _batch_size(net)
    return {
        "name": net.name,
        "phase": net.phase,
        "batch": batch,
        "params": total_params,
        "param_bytes": total_params * net.dtype.itemsize,
        "flops": total_flops,
        "flops_per_image": total_flops // max(1, batch),
        "layers": rows,
    }


def _batch_size(net):
    for layer, top in zip(net.layers, net.top_vecs):
        if top and (layer.type == "Input" or getattr(layer, "is_data", False)) and top[0].ndim:
            return int(top[0].shape[0])
    return 1


def human(n, unit=""):
    """1234567 -> '1.23M'."""
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}{unit}"
    return f"{n:g}{unit}" if isinstance(n, float) else f"{n}{unit}"


def format_table(report):
    lines = [f"{'layer':24s} {'type':18s} {'output':22s} {'params':>12s} {'MiB':>9s} {'FLOPs':>10s}"]
    for row in report["layers"]:
        shape = " / ".join("x".join(map(str, s)) for s in row["top_shapes"])
        lines.append(f"{row['name'][:24]:24s} {row['type'][:18]:18s} {shape[:22]:22s} "
                     f"{row['params']:12,d} {row['param_bytes'] / 2**20:9.3f} {human(row['flops']):>10s}")
    lines.append(f"{'total':24s} {'':18s} {'batch ' + str(report['batch']):22s} {report['params']:12,d} "
                 f"{report['param_bytes'] / 2**20:9.3f} {human(report['flops']):>10s}")
    return "\n".join(lines)
