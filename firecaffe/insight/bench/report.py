"""Read benchmark results, check them, and turn a sweep folder into Markdown tables and figures."""
import os
from pathlib import Path

from ...comm import names
from ...errors import FirecaffeError
from . import model
from .model import read_json
from .comm import VERSION, add_ratios, human_bytes

REQUIRED_KEYS = ("comm", "bytes", "ranks", "median_s")


def load_records(path):
    """The records of one ``bench comm --json`` file, checked for version and keys."""
    data = read_json(path, "results")
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise FirecaffeError(f"results {path}: expected a JSON list of records from `firecaffe bench comm --json`")
    for index, record in enumerate(data):
        if record.get("version") != VERSION:
            raise FirecaffeError(f"results {path}, record {index}: version {record.get('version')!r}, this "
                                 f"firecaffe reads version {VERSION}: measure again with this version")
        missing = [key for key in REQUIRED_KEYS if key not in record]
        if missing:
            raise FirecaffeError(f"results {path}, record {index}: missing {', '.join(missing)}")
    return data


def load_folder(folder):
    """All records of the ``*.json`` result files in ``folder`` (profile.json excepted), ratios recomputed."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FirecaffeError(f"{folder} is not a folder of `bench comm --json` results")
    files = sorted(p for p in folder.glob("*.json") if p.name != "profile.json")
    if not files:
        raise FirecaffeError(f"no *.json results in {folder}: run launch/scaling.sh first")
    records = [record for path in files for record in load_records(path)]
    return add_ratios(_latest_per_point(records))


def _latest_per_point(records):
    """One record per (comm, bytes, ranks, servers): the later file wins."""
    points = {}
    for record in records:
        points[(record["comm"], record["bytes"], record["ranks"], record.get("num_servers", 0),
                record.get("compress") or "none")] = record
    return sorted(points.values(), key=lambda r: (r["bytes"], r["comm"], r["ranks"]))


def markdown_tables(records):
    """One table per message size: rows are rank counts, columns each strategy's median ms (x mpi)."""
    out = []
    for nbytes in sorted({r["bytes"] for r in records}):
        subset = [r for r in records if r["bytes"] == nbytes]
        known = names()
        comms = sorted({r["comm"] for r in subset}, key=lambda c: (known.index(c) if c in known else len(known), c))
        out.append(f"#### {human_bytes(nbytes)} ({nbytes:,} bytes): median ms per allreduce "
                   "[min-max] (x mpi)\n")
        out.append("| ranks | " + " | ".join(comms) + " |")
        out.append("|---:|" + "---:|" * len(comms))
        for ranks in sorted({r["ranks"] for r in subset}):
            cells = []
            for comm in comms:
                match = [r for r in subset if r["comm"] == comm and r["ranks"] == ranks]
                if not match:
                    cells.append("")
                    continue
                r = match[0]
                ratio = f" (x{r['ratio_to_mpi']:.2f})" if r.get("ratio_to_mpi") and comm != "mpi" else ""
                cells.append(f"{r['median_s'] * 1e3:.3g} [{r['min_s'] * 1e3:.3g}-{r['max_s'] * 1e3:.3g}]{ratio}")
            out.append(f"| {ranks} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def error_table(records, profile, min_ranks=1):
    """Markdown rows of measured vs predicted time per point, and the median |error| per strategy."""
    rows = [r for r in model.errors(records, profile) if r[0]["ranks"] >= min_ranks]
    lines = ["| comm | bytes | ranks | measured ms | model ms | error |", "|---|---:|---:|---:|---:|---:|"]
    for record, predicted, error in rows:
        lines.append(f"| {record['comm']} | {human_bytes(record['bytes'])} | {record['ranks']} | "
                     f"{record['median_s'] * 1e3:.3g} | {predicted * 1e3:.3g} | {error:+.0%} |")
    lines += ["", "| comm | points | median abs error | max abs error |", "|---|---:|---:|---:|"]
    for comm, errs in summary_by_comm(rows).items():
        lines.append(f"| {comm} | {len(errs)} | {_median(errs):.0%} | {max(errs):.0%} |")
    return "\n".join(lines)


def codec_table(records, profile, min_ranks=1, compute_cores=None):
    """Markdown rows of measured vs predicted time of the compressed records (``--compress``), with the
    per-codec delta of ``profile``, and the largest |error| per strategy and codec at ``min_ranks`` or more
    (``compute_cores``: as for codecs.fit)."""
    from . import codecs
    lines = ["| comm | compress | bytes | ranks | measured ms | model ms | error |",
             "|---|---|---:|---:|---:|---:|---:|"]
    worst = {}
    for record in records:
        if codecs.family(record.get("compress")) == "none" or record["ranks"] < 2 or record["median_s"] <= 0:
            continue
        predicted = model.predict(record["comm"], record["bytes"], record["ranks"], profile,
                                  record.get("num_servers") or 1, compress=record["compress"],
                                  compute_cores=compute_cores, **model.layout(record))
        error = (predicted - record["median_s"]) / record["median_s"]
        lines.append(f"| {record['comm']} | {record['compress']} | {human_bytes(record['bytes'])} | "
                     f"{record['ranks']} | "
                     f"{record['median_s'] * 1e3:.3g} | {predicted * 1e3:.3g} | {error:+.0%} |")
        if record["ranks"] >= min_ranks:
            key = (record["comm"], record["compress"])
            worst[key] = max(worst.get(key, 0.0), abs(error))
    deltas = ", ".join(f"{kind} {value * 1e12:.4g} ps/byte" for kind, value in
                       sorted((profile.get("delta_s_per_byte") or {}).items()))
    lines += ["", f"delta (encode + decode per float32 byte): {deltas}", "",
              f"| comm | compress | max abs error at >= {min_ranks} ranks |", "|---|---|---:|"]
    lines += [f"| {comm} | {codec} | {error:.0%} |" for (comm, codec), error in sorted(worst.items())]
    return "\n".join(lines)


def summary_by_comm(rows):
    """``{comm: [abs relative error, ...]}`` of ``model.errors`` rows."""
    out = {}
    for record, _, error in rows:
        out.setdefault(record["comm"], []).append(abs(error))
    return out


def _median(values):
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def write_report(folder, out=None, fit=True, min_ranks=4, cores=None, figure=True):
    """Markdown for a sweep folder, with a figure per strategy set written next to it; returns the text.

    ``cores``: the contended model's cores per node, as ``bench fit --cores`` (None: this machine's if
    the records were measured on it, else off; 0: off). ``figure=False`` leaves the figure unwritten.
    """
    from .plot import plot_time_vs_ranks
    records = load_folder(folder)
    cores = model.default_cores(records) if cores is None else cores
    profile = model.fit(records, cores=cores or None) if fit else None
    figure_path = (Path(out).parent if out else Path(folder)) / "scaling.png"
    if figure:
        plot_time_vs_ranks(records, figure_path, profile,
                           title=f"allreduce time, {os.path.basename(os.path.abspath(folder))}")
    parts = [f"## Allreduce measurements: {folder}\n", f"![time against ranks]({figure_path.name})\n",
             markdown_tables(records)]
    if profile:
        parts += ["## Fitted model\n",
                  f"alpha = {profile['alpha_s'] * 1e6:.3g} us, beta = {profile['beta_s_per_byte'] * 1e12:.4g} "
                  f"ps/byte ({_bandwidth(profile)}), gamma = {profile['gamma_s_per_byte'] * 1e12:.4g} ps/byte, "
                  f"fitted on {profile['points']} points"
                  + (f", contended model above {profile['cores']} processes" if profile.get("cores") else "")
                  + ".\n",
                  f"Error at {min_ranks} ranks and more:\n", error_table(records, profile, min_ranks), ""]
    text = "\n".join(parts)
    if out:
        Path(out).write_text(text)
    return text


def _bandwidth(profile):
    beta = profile["beta_s_per_byte"]
    return f"{1 / beta / 1e9:.3g} GB/s" if beta else "infinite bandwidth"
