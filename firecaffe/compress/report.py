"""The per-layer table of Deep Compression (Han et al. 2016, Table 4), from the encoder's own costs.

Per compressed layer's weights: parameters, density (weights kept), bits of the shared weights,
relative index width, bytes after pruning (kept weights as float32 + fixed-width indices,
fillers counted), after quantization (fixed-width codes + indices + codebook), after Huffman
(what the file holds for it), and the ratio float32 / after Huffman. Then the blobs stored raw
(biases), the container's own bytes (header, tables, checksum), and the totals: the last
column of the total row is the file's size against the float32 weights.
"""
import json


def summarize(costs, file_bytes, plan_layers):
    """{'layers': [...], 'other': {...}, 'total': {...}} from fcz costs (one dict per blob)."""
    rows, other = [], {"params": 0, "dense": 0, "stored": 0}
    for cost in costs:
        if cost["layer"] in plan_layers and cost["blob"] == 0:
            rows.append({key: cost[key] for key in ("layer", "type", "params", "kept", "bits", "width",
                                                    "dense", "pruned", "quantized", "stored")})
            rows[-1]["density"] = cost["kept"] / max(1, cost["params"])
            rows[-1]["ratio"] = cost["dense"] / max(1, cost["stored"])
        else:
            for key in other:
                other[key] += cost[key]
    dense = sum(r["dense"] for r in rows) + other["dense"]
    total = {"params": sum(r["params"] for r in rows) + other["params"],
             "kept": sum(r["kept"] for r in rows),
             "compressed_params": sum(r["params"] for r in rows),
             "dense": dense,
             "pruned": sum(r["pruned"] for r in rows) + other["stored"],
             "quantized": sum(r["quantized"] for r in rows) + other["stored"],
             "stored": file_bytes,
             "container": file_bytes - sum(r["stored"] for r in rows) - other["stored"]}
    total["density"] = total["kept"] / max(1, total["compressed_params"])
    for stage in ("pruned", "quantized", "stored"):
        total[f"ratio_{stage}"] = dense / max(1, total[stage])
    total["ratio"] = total["ratio_stored"]
    return {"layers": rows, "other": other, "total": total}


def table(summary):
    """The report as text, one row per compressed layer, then raw blobs, container and totals
    (sizes in MB = 10**6 bytes, as the paper's 240 MB -> 6.9 MB; kB for nets under 10 MB)."""
    mb = _in_units(1e6 if summary["total"]["dense"] >= 1e7 else 1e3)
    head = (f"{'layer':<22}{'params':>11}{'density':>9}{'bits':>5}{'index':>6}"
            f"{'pruned':>12}{'quantized':>12}{'huffman':>12}{'ratio':>8}")
    lines = [head, "-" * len(head)]
    for r in summary["layers"]:
        lines.append(f"{r['layer'][:21]:<22}{r['params']:>11,}{100 * r['density']:>8.1f}%{r['bits']:>5}"
                     f"{r['width'] or '-':>6}{mb(r['pruned']):>12}{mb(r['quantized']):>12}"
                     f"{mb(r['stored']):>12}{r['ratio']:>7.1f}x")
    o, t = summary["other"], summary["total"]
    lines.append(f"{'other blobs (raw)':<22}{o['params']:>11,}{'':>20}{mb(o['stored']):>12}"
                 f"{mb(o['stored']):>12}{mb(o['stored']):>12}")
    lines.append(f"{'container':<22}{'':>31}{'':>12}{'':>12}{mb(t['container']):>12}")
    lines.append("-" * len(head))
    lines.append(f"{'total':<22}{t['params']:>11,}{100 * t['density']:>8.1f}%{'':>11}{mb(t['pruned']):>12}"
                 f"{mb(t['quantized']):>12}{mb(t['stored']):>12}{t['ratio']:>7.1f}x")
    lines.append(f"float32 weights {mb(t['dense'])} -> pruned {t['ratio_pruned']:.1f}x, "
                 f"+ quantized {t['ratio_quantized']:.1f}x, + Huffman (the file) {t['ratio_stored']:.1f}x")
    return "\n".join(lines)


def to_json(summary, **extra):
    return json.dumps(dict(summary, **extra), indent=1, sort_keys=True)


def _in_units(unit):
    name = "MB" if unit == 1e6 else "kB"
    return lambda size: f"{size / unit:.3f}{name}"
