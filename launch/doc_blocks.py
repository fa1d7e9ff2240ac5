"""The tables and fitted figures of docs/scaling.md (and docs/compression.md's sparse forward), each from
committed raw data with the current code.

launch/regen_docs.py writes each between ``<!-- regen_docs.py NAME -->`` and
``<!-- /regen_docs.py -->`` in docs/scaling.md; ``BLOCKS`` maps NAME to a function of the
generated files' texts (``texts[path]``) that returns the block's Markdown.
"""
import re
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "launch"))
from cluster_floors import floor_s  # noqa: E402
from firecaffe.insight.bench import model  # noqa: E402
from firecaffe.insight.bench.report import _median, load_folder, load_records, summary_by_comm  # noqa: E402

C = "docs/scaling/cluster"
MIB = 2**20


def _ms(seconds):
    """Milliseconds to 3 significant figures, as the doc's tables print them (72.0, 184, 3.51)."""
    ms = seconds * 1e3
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"


def _rows(text):
    """The cells of a Markdown table's body rows."""
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("|") and not line.startswith("|--") and not line.startswith("|---")][1:]


def sweep_table(texts):
    records = load_folder("docs/scaling")
    at = {(r["comm"], r["bytes"], r["ranks"]): r for r in records}
    lines = ["| size | ranks | tree | ring | mpi | ps (1 server) |", "|---|---:|---:|---:|---:|---:|"]
    for size in (16, 64):
        for ranks in (2, 4, 8, 9):
            cells = []
            for comm in ("tree", "ring", "mpi", "ps"):
                r = at.get((comm, size * MIB, ranks))
                ratio = f" ({r['ratio_to_mpi']:.2f})" if r and comm != "mpi" and r.get("ratio_to_mpi") else ""
                cells.append(f"{_ms(r['median_s'])}{ratio}" if r else "–")
            lines.append(f"| {size} MB | {ranks} | " + " | ".join(cells) + " |")
    spread = sorted((max(r["run_medians_s"]) / min(r["run_medians_s"]), r["comm"], r["bytes"], r["ranks"])
                    for r in load_records("docs/scaling/sweep.json"))
    big = [s for s in spread if s[2] >= MIB]
    worst = ", ".join(f"{c} {n // MIB} MB on {p} ranks {x:.2f}" for x, c, n, p in big[-2:])
    middle = statistics.median(s[0] for s in big)
    lines += ["", f"Across the runs, a point's largest run median over its smallest: {middle:.2f} "
              f"at the median point from 1 MB ({len(big)} points, 6 runs each; the worst: {worst}), "
              f"{statistics.median(s[0] for s in spread):.2f} over all {len(spread)} points (4 KB and 64 KB: "
              "3 runs each) ([sweep.json](scaling/sweep.json), `run_medians_s`)."]
    return "\n".join(lines)


def _pct(values):
    """``+4, +21, −13, −19%``."""
    return ", ".join(f"{v * 100:+.0f}".replace("-", "−") for v in values) + "%"


def sweep_fit(texts):
    records = [r for r in load_records("docs/scaling/sweep.json") if r["bytes"] >= MIB]
    shared = model.fit(records, cores=2)
    errors = {(r["comm"], r["bytes"], r["ranks"]): e for r, _, e in model.errors(records, shared)}
    lines = [f"The shared fit over the {shared['points']} points from 1 MB gives "
             f"α = {shared['alpha_s'] * 1e6:.2g} µs, β = {shared['beta_s_per_byte'] * 1e12:.0f} ps/byte "
             f"({1 / shared['beta_s_per_byte'] / 1e9:.2g} GB/s) and γ = {shared['gamma_s_per_byte'] * 1e12:.0f} "
             "ps/byte. Error of the shared fit at 4 or more ranks:", "",
             "| strategy | 4 ranks (1M, 4M, 16M, 64M) | 8 ranks | 9 ranks | median / max at ≥ 4 ranks, shared fit "
             "| own fit |", "|---|---|---|---|---|---|"]
    for comm, label in (("tree", "tree"), ("ring", "ring"), ("mpi", "mpi"), ("ps", "ps (1 server)")):
        cells = []
        for ranks in (4, 8, 9):
            got = [errors.get((comm, size * MIB, ranks)) for size in (1, 4, 16, 64)]
            cells.append(_pct(got) if None not in got else "–")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {_summary(records, shared, comm)} | "
                     f"{_summary([r for r in records if r['comm'] == comm], None, comm)} |")
    big = [r for r in records if r["bytes"] >= 16 * MIB]
    shared16 = model.fit(big, cores=2)
    lines += ["", "Fitting only the messages that do not fit in the cache (`--min-bytes 16M`, "
              "[output](scaling/fit_16M.txt)): " + ", ".join(
                  f"{comm} {_summary(big, shared16, comm)}" for comm in ("tree", "ring", "mpi", "ps"))
              + "; with per-strategy fits " + ", ".join(
                  f"{comm} {_summary([r for r in big if r['comm'] == comm], None, comm)}"
                  for comm in ("tree", "ring", "mpi", "ps")) + " (median / max at ≥ 4 ranks)."]
    return "\n".join(lines)


def _summary(records, profile, comm):
    """``median% / max%`` of |error| at >= 4 ranks for ``comm`` (profile None: its own fit)."""
    profile = profile or model.fit(records, cores=2)
    errs = summary_by_comm([row for row in model.errors(records, profile) if row[0]["ranks"] >= 4])[comm]
    return f"{_median(errs):.0%} / {max(errs):.0%}"


def cluster_100m(texts):
    records = [r for name in ("100M.json", "64M_100M.json") for r in load_records(f"{C}/100M/{name}")]
    at = {(r["comm"], r["bytes"] // MIB, r["ranks"]): r["median_s"] for r in records}
    lines = ["| nodes | ring 16 MiB | ring 64 MiB | tree 16 MiB | tree 64 MiB | dbtree 16 MiB | dbtree 64 MiB "
             "| mpi 16 MiB | mpi 64 MiB | ps 16 MiB | ps / tree 16 MiB |", "|---:|" + "---:|" * 10]
    for nodes in (2, 4, 8, 16):
        workers = 15 if nodes == 16 else nodes
        cells = []
        for comm, size in [(c, s) for c in ("ring", "tree", "dbtree", "mpi") for s in (16, 64)] + [("ps", 16)]:
            p = workers if comm == "ps" else nodes
            t = at.get((comm, size, p))
            cells.append(f"{t * 1e3:.0f} ({t / floor_s(comm, size * MIB, p, 100e6):.2f})" if t else "-")
        cells.append(f"{at[('ps', 16, workers)] / at[('tree', 16, nodes)]:.2f}")
        label = f"{nodes} (ps: 15 workers)" if nodes == 16 else str(nodes)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def nets(texts):
    lines = ["| net | workers | tree ms (model) | ps ms (model) | ps / tree (model) |", "|---|---:|---:|---:|---:|"]
    rows = _rows(texts[f"{C}/nets/table.md"])
    for net in ("NiN", "GoogLeNet"):
        for name, workers, tree, tree_model, ps, ps_model, ratio, ratio_model in rows:
            if name == net:
                lines.append(f"| {net} | {workers} | {tree} ({tree_model}) | {ps} ({ps_model}) | "
                             f"{ratio} ({ratio_model}) |")
    return "\n".join(lines)


def _strong(texts, folder, labels, heading="strategy", speedups=False):
    """Strong-scaling tables (launch/strong_table.py's, one per label: ``folder/<label, ':' as '_'>``) side by side:
    measured / predicted per node count, and with ``speedups`` the measured and predicted speedups."""
    extra = " measured speedup 2 / 4 / 8 | predicted |" if speedups else ""
    lines = [f"| {heading} | 1 node ms | 2 nodes: measured / predicted | 4 nodes | 8 nodes |{extra}",
             "|---|---:|---:|---:|---:|" + ("---:|---:|" if speedups else "")]
    for label in labels:
        cells, measured_up, predicted_up = {}, [], []
        for nodes, measured, predicted, error, speedup, predicted_speedup in _rows(
                texts[f"{C}/{folder}/{label.replace(':', '_')}/table.md"]):
            cells[nodes] = measured if nodes == "1" else f"{measured} / {predicted.split()[0]} ({error})"
            if nodes != "1":
                measured_up.append(speedup)
                predicted_up.append(predicted_speedup)
        tail = f" {' / '.join(measured_up)} | {' / '.join(predicted_up)} |" if speedups else ""
        lines.append(f"| {label} | " + " | ".join(cells[n] for n in ("1", "2", "4", "8")) + " |" + tail)
    return "\n".join(lines)


def compress_fit(texts, folder=f"{C}/compress-100M"):
    """The compressed fit's delta line and its largest error per strategy and codec (bench fit's own table)."""
    text = texts[f"{folder}/fit.txt"]
    start = text.index("delta (encode + decode")
    return text[start:].split("\n\n")[0] + "\n\n" + text[start:].split("\n\n")[1].rstrip("\n")


CODECS = ("fp16", "bf16", "int8", "powersgd:4")
CODEC_TARGETS = {"fp16": 0.55, "bf16": 0.55, "int8": 0.3, "powersgd:4": 0.2}


def compress_ratios(texts, folder=f"{C}/compress-100M"):
    """Issue 21's time targets on the compressed sweep's records: each codec's median over the same strategy's
    uncompressed one (same run), MPICH's float32 Allreduce beside them; a ratio over its target is in bold."""
    at = {}
    for codec in ("none", "fp16", "bf16", "int8", "powersgd"):
        if not (REPO / folder / f"{codec}_100M.json").exists():       # a sweep of some codecs only
            continue
        for r in load_records(f"{folder}/{codec}_100M.json"):
            at[(r["comm"], r["bytes"], r["ranks"], r.get("compress") or "none")] = r["median_s"]
    codecs = [codec for codec in CODECS if any(key[3] == codec for key in at)]
    lines = ["| strategy | size | nodes | none ms | " + " | ".join(codecs) + " | MPICH float32 ms |",
             "|---|---:|---:|---:|" + "---:|" * len(codecs) + "---:|"]
    for comm in ("tree", "dbtree", "ring"):
        for size in sorted({b for c, b, p, _ in at if c == comm}):
            for ranks in sorted({p for c, b, p, _ in at if c == comm and b == size}):
                base = at.get((comm, size, ranks, "none"))
                if base is None:
                    continue
                cells = []
                for codec in codecs:
                    t = at.get((comm, size, ranks, codec))
                    ratio = "" if t is None else f"{t / base:.2f}x"
                    cells.append(f"**{ratio}**" if t is not None and t / base > CODEC_TARGETS[codec] else ratio)
                mpi = at.get(("mpi", size, ranks, "none"))
                lines.append(f"| {comm} | {size // MIB} MiB | {ranks} | {_ms(base)} | " + " | ".join(cells)
                             + f" | {'' if mpi is None else _ms(mpi)} |")
    return "\n".join(lines)


def powersgd_links(texts, folder=f"{C}/powersgd-links"):
    """launch/powersgd_links.sh's readings: the bytes every link sent during each allreduce, and its time."""
    import json
    rows = ["| --compress | gradient | nodes | bytes sent, all links | bytes on the wire (codec) | time ms |",
            "|---|---:|---:|---:|---:|---:|"]
    sent = {}
    for tag in ("none", "powersgd"):
        before, after = (json.loads((REPO / folder / f"{when}_{tag}.json").read_text()) for when in ("before", "after"))
        sent[tag] = sum(link["sent_bytes"] for link in after["links"]) - sum(
            link["sent_bytes"] for link in before["links"])
        record, = load_records(f"{folder}/bench_{tag}.json")
        rows.append(f"| {record['compress']} | {record['bytes'] / MIB:.1f} MiB | {record['ranks']} | "
                    f"{sent[tag] / MIB:,.1f} MiB | {record['wire_bytes'] / MIB:,.3f} MiB | {_ms(record['median_s'])} |")
    rows.append("")
    rows.append(f"PowerSGD sent {sent['none'] / sent['powersgd']:.0f}x fewer bytes on the links.")
    return "\n".join(rows)


SPARSE = "docs/compression/sparse_ip_net.json"       # benchmarks/sparse_ip_net.py --json


def _sparse_run():
    import json
    return json.loads((REPO / SPARSE).read_text())


def sparse_ip_steady(texts):
    """docs/compression.md: InnerProduct forwards inside nets, firecaffe (sparse where it chose to) and dense."""
    lines = ["| net, batch | layer | engine (firecaffe) | firecaffe ms | dense ms | dense / firecaffe "
             "| CSR build ms | density scan ms |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in _sparse_run()["steady"]:
        build, scan = (_ms(r[k] / 1e3) if r.get(k) is not None else "" for k in ("build_ms", "scan_ms"))
        lines.append(f"| {r['net']} | {r['layer']} | {r['engine']} | {r['firecaffe_ms']:.3g} | "
                     f"{r['dense_ms']:.3g} | {r['dense_ms'] / r['firecaffe_ms']:.2f}x | {build} | {scan} |")
    return "\n".join(lines)


def sparse_ip_loop(texts):
    """docs/compression.md: a test pass after each weight update, T forwards, firecaffe and dense."""
    lines = ["| net, batch | forwards per pass | firecaffe ms | dense ms | dense / firecaffe |", "|---|---:|---:|---:|---:|"]
    for r in _sparse_run()["loops"]:
        lines.append(f"| {r['net']} | {r['forwards']} | {r['firecaffe_ms']:.4g} | {r['dense_ms']:.4g} | "
                     f"{r['dense_ms'] / r['firecaffe_ms']:.2f}x |")
    return "\n".join(lines)


def sparse_ip_conditions(texts):
    run = _sparse_run()
    return (f"{run['date']}, {run['threads']} threads on {run['cpus']} shared cores, load average "
            f"{run['load_before']:.1f} before and {run['load_after']:.1f} after, best of {run['reps']}")


def sparse_ip_range(texts):
    """The steady-state ratios of the sparse layers at each AlexNet batch, as 'lo-hi x at batch b'."""
    at = {}
    for r in _sparse_run()["steady"]:
        if r["net"].startswith("alexnet") and "unpruned" not in r["net"] and r["engine"].startswith("sparse"):
            at.setdefault(r["net"].split()[1], []).append(r["dense_ms"] / r["firecaffe_ms"])
    def span(v):
        lo, hi = f"{min(v):.1f}", f"{max(v):.1f}"
        return f"{lo}x" if lo == hi else f"{lo}-{hi}x"
    return ", ".join(f"{span(v)} at batch {b[1:]}" for b, v in at.items())


PERF = "docs/performance"
NET_TARGETS = {"squeezenet": ("SqueezeNet v1.1 (32)", 0.8), "alexnet": ("AlexNet (32)", 0.9),
               "googlenet": ("GoogLeNet (16)", 0.9), "resnet50": ("ResNet-50 (16)", 0.9)}


def _finished_log(path):
    """The text of a log whose run ended (its '# end' line), else None (not run, or still running)."""
    text = path.read_text() if path.exists() else ""
    return text if "\n# end " in text else None


def _cpu_net_log(text):
    """What benchmarks/cpu_net.py printed: {'kernels', 'tuned', 'load', 'ms': {name: ms},
    'ratio': {peer: (wall, pairs)}}."""
    out = {"ms": {}, "ratio": {}, "tuned": "MALLOC_MMAP_THRESHOLD_=(default)" not in text}
    blas = re.search(r"BLAS: openblas \S+ (\S+) threads", text)
    out["kernels"] = blas.group(1) if blas else "?"
    out["load"] = re.search(r"load average: ([\d.]+)", text).group(1)
    for name, ms in re.findall(r"^  (\S+)\s+([\d.]+) ms  CPU", text, re.M):
        out["ms"][name] = float(ms)
    for peer, wall, pairs in re.findall(r"ratio firecaffe/(\S+): wall ([\d.]+), CPU [\d.]+, median of the \d+ "
                                        r"interleaved pairs ([\d.]+)", text):
        out["ratio"][peer] = (float(wall), float(pairs))
    # a variant whose ratio line the script did not print then (--unfused-norm before 2026-12-07
    # evening): the same two figures from the per-iteration times, as the script computes them
    times = {name: [float(v) for v in runs.split()]
             for name, runs in re.findall(r"^  (\S+)\s+[\d.]+ ms  CPU\s+[\d.]+ ms\s+\(all: ([\d. ]+)\)", text, re.M)}
    for peer, runs in times.items():
        if peer != "firecaffe" and peer not in out["ratio"] and "firecaffe" in times:
            ours = times["firecaffe"]
            out["ratio"][peer] = (round(out["ms"]["firecaffe"] / out["ms"][peer], 2),
                                  round(statistics.median(a / b for a, b in zip(ours, runs)), 2))
    return out


def cpu_targets(texts, folder=f"{PERF}/2026-12-07-amd", twin="dnnl-wgrad",
                twin_label="1x1 weight gradients on oneDNN instead (pairs)", code_column=False):
    """Issue 25's PyTorch targets from cpu_net.py's logs in ``folder``'s subfolders, one row per log;
    the last column (none where ``twin`` is None): the ``twin`` firecaffe variant's time over firecaffe's; ``code_column``: a first
    column naming the subfolder (the code that ran)."""
    lines = [("| code " if code_column else "") + "| net (batch) | OpenBLAS kernels | allocator | load at start | "
             f"firecaffe ms | PyTorch ms | firecaffe / PyTorch (pairs) | target | met? |"
             + (f" {twin_label} |" if twin else ""),
             ("|---" if code_column else "") + "|---|---|---|---:|---:|---:|---:|---:|---|" + ("---:|" if twin else "")]
    for sub in sorted(p.name for p in (REPO / folder).iterdir() if p.is_dir()):
        for net, (label, target) in NET_TARGETS.items():
            for alloc in ("tuned", "default"):
                text = _finished_log(REPO / folder / sub / f"{net}_{alloc}.log")
                if text is None:
                    continue
                log = _cpu_net_log(text)
                wall, pairs = log["ratio"]["torch"]
                wg = log["ratio"].get(twin)
                met = "yes" if wall <= target else "**no**"
                lines.append(("| " + sub + " " if code_column else "") + f"| {label} | {log['kernels']} | {alloc} | {log['load']} | {log['ms']['firecaffe']:.0f} | "
                             f"{log['ms']['torch']:.0f} | {wall:.2f} ({pairs:.2f}) | {target} | "
                             f"{met if alloc == 'tuned' else '(default allocator)'} |"
                             + (f" {'' if wg is None else f'{1 / wg[0]:.2f} ({1 / wg[1]:.2f})'} |" if twin else ""))
    return "\n".join(lines)


def caffe_rounds(texts, folder=f"{PERF}/2026-12-07-amd", log="caffe_40rounds.log", code_column=False):
    """benchmarks/caffe_time_peer.sh's rounds in ``folder``'s subfolders (the file ``log`` in each):
    firecaffe's Average Forward-Backward over real Caffe's of the same round."""
    lines = ["| OpenBLAS kernels | rounds | real Caffe ms (median) | firecaffe ms (median) | ratio per round: "
             "quartiles | median ratio | target | met? |", "|---|---:|---:|---:|---|---:|---:|---|"]
    for sub in sorted(p.name for p in (REPO / folder).iterdir() if p.is_dir()):
        text = _finished_log(REPO / folder / sub / log)
        if text is None:
            continue
        caffe = [float(v) for v in re.findall(r"^\s+caffe\s+Average Forward-Backward: ([\d.]+)", text, re.M)]
        ours = [float(v) for v in re.findall(r"firecaffe Average Forward-Backward: ([\d.]+)", text)]
        ratios = [b / a for a, b in zip(caffe, ours)]
        core = re.search(r"OPENBLAS_CORETYPE=(.+?) for both", text)
        kernels = f"{core.group(1)} both" if core else "Caffe SkylakeX, firecaffe the environment's Haswell"
        kernels = "not pinned: each OpenBLAS its own" if core and core.group(1) == "(not set)" else kernels
        kernels = f"{sub}: {kernels}" if code_column else kernels
        q1, _, q3 = statistics.quantiles(ratios, n=4)
        median = statistics.median(ratios)
        lines.append(f"| {kernels} | {len(ratios)} | {statistics.median(caffe):.0f} | {statistics.median(ours):.0f} | "
                     f"{q1:.2f}-{q3:.2f} (all {min(ratios):.2f}-{max(ratios):.2f}) | {median:.2f} | 0.6 | "
                     f"{'yes' if median <= 0.6 else '**no**'} |")
    return "\n".join(lines)


def norm_chain(texts, folder=f"{PERF}/2026-12-07-amd-chain/after"):
    """benchmarks/norm_chain.py's tables (batch and global statistics), as one Markdown table."""
    lines = ["| statistics | shape | forward, chain ms | forward, separate ms | ratio | backward, chain ms | "
             "backward, separate ms | ratio |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, label in (("norm_chain.log", "batch"), ("norm_chain_global.log", "global")):
        text = _finished_log(REPO / folder / name)
        if text is None:
            continue
        for row in re.findall(r"^\s+(\S+)((?:\s+[\d.]+){6})", text, re.M):
            values = row[1].split()
            lines.append(f"| {label} | {row[0].replace(',', 'x')} | " + " | ".join(values) + " |")
    return "\n".join(lines)


BLOCKS = {
    "cpu-targets-amd": cpu_targets,
    "caffe-rounds-amd": caffe_rounds,
    "cpu-targets-amd-chain": lambda texts: cpu_targets(
        texts, f"{PERF}/2026-12-07-amd-chain", "unfused-norm", "BatchNorm, Scale, ReLU as separate layers instead (pairs)",
        code_column=True),
    "caffe-rounds-amd-chain": lambda texts: caffe_rounds(texts, f"{PERF}/2026-12-07-amd-chain"),
    "norm-chain-amd": norm_chain,
    "cpu-targets-avx2": lambda texts: cpu_targets(texts, f"{PERF}/2026-12-07-avx2", None, code_column=True),
    "caffe-rounds-avx2": lambda texts: caffe_rounds(texts, f"{PERF}/2026-12-07-avx2", "caffe_rounds.log",
                                                    code_column=True),
    "cpu-targets-zen4": lambda texts: cpu_targets(texts, f"{PERF}/2026-12-08-zen4", code_column=True),
    "caffe-rounds-zen4": lambda texts: caffe_rounds(texts, f"{PERF}/2026-12-08-zen4", "caffe_rounds.log",
                                                    code_column=True),
    "sparse-ip-steady": sparse_ip_steady,
    "sparse-ip-loop": sparse_ip_loop,
    "sparse-ip-conditions": sparse_ip_conditions,
    "sparse-ip-range": sparse_ip_range,
    "auto": lambda texts: texts["docs/scaling/auto/table.md"].rstrip("\n"),
    "auto-amd": lambda texts: texts["docs/scaling/auto-amd/table.md"].rstrip("\n"),
    "convergence-squeezenet": lambda texts: texts["docs/scaling/compress/squeezenet_digits/table.md"].rstrip("\n"),
    "convergence-squeezenet-seeds": lambda texts: texts["docs/scaling/compress/squeezenet_digits_seeds/table.md"].rstrip("\n"),
    "convergence-squeezenet-msra-seeds": lambda texts: texts[
        "docs/scaling/compress/squeezenet_digits_msra_seeds/table.md"].rstrip("\n"),
    "convergence-squeezenet-cifar": lambda texts: texts["docs/scaling/compress/squeezenet_cifar/table.md"].rstrip("\n"),
    "convergence-plain-fp16": lambda texts: texts[
        "docs/scaling/compress/squeezenet_digits_plain_fp16/table.md"].rstrip("\n"),
    "compress-fit": compress_fit,
    "compress-ratios": compress_ratios,
    "compress-ratios-64M": lambda texts: compress_ratios(texts, f"{C}/compress-64M-100M"),
    "compress-ratios-16n": lambda texts: compress_ratios(texts, f"{C}/compress-16n-100M"),
    "compress-ratios-64M-16n": lambda texts: compress_ratios(texts, f"{C}/compress-64M-16n-100M"),
    "compress-ratios-psgd": lambda texts: compress_ratios(texts, f"{C}/compress-psgd-100M"),
    "compress-fit-psgd": lambda texts: compress_fit(texts, f"{C}/compress-psgd-100M"),
    "compress-ratios-psgd-amd": lambda texts: compress_ratios(texts, f"{C}/compress-psgd-amd-100M"),
    "compress-fit-psgd-amd": lambda texts: compress_fit(texts, f"{C}/compress-psgd-amd-100M"),
    "powersgd-links": powersgd_links,
    "powersgd-peer": lambda texts: texts["docs/scaling/compress/powersgd_peer/table.md"].rstrip("\n"),
    "strong-compress": lambda texts: _strong(texts, "strong-compress", ("none", "fp16", "powersgd:4"),
                                             "--compress", speedups=True),
    "nets": nets,
    "sweep": sweep_table,
    "sweep-fit": sweep_fit,
    "cluster-100M": cluster_100m,
    "strong": lambda texts: _strong(texts, "strong", ("ring", "tree", "dbtree", "mpi")),
    "strong-reno": lambda texts: _strong(texts, "strong-reno", ("ring", "tree")),
}

MARK = re.compile(r"(<!-- regen_docs\.py (\S+) -->(\n?))(.*?)(<!-- /regen_docs\.py -->)", re.S)


def fill(doc, texts):
    """``doc`` with every marked block replaced by what its function gives now (a block whose opening
    mark ends its line fills whole lines; one inside a line, a table cell for instance, fills in place)."""
    def replace(match):
        return match.group(1) + BLOCKS[match.group(2)](texts) + match.group(3) + match.group(5)
    return MARK.sub(replace, doc)
