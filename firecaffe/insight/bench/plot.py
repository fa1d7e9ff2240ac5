"""Figures of benchmark records: time against ranks, one line per strategy, one panel per size.

Every figure carries what it draws (each panel's points, error bars and model lines, to 4 significant
figures) as JSON in its PNG text chunk ``firecaffe-data`` (``figure_data(path)`` reads it back), so a
figure can be checked against what the current code draws from the same records without its pixels.
"""
import json

from ...comm import names
from . import model
from .comm import human_bytes

DATA_KEY = "firecaffe-data"
PALETTE = ("tab:blue", "tab:green", "tab:gray", "tab:red", "tab:purple", "tab:orange", "tab:brown", "tab:cyan")


def plot_time_vs_ranks(records, path, profile=None, title=None):
    """Write a PNG of median time (error bars: min to max) against ranks; dashed lines: the model."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({r["bytes"] for r in records})
    columns = min(len(sizes), 3)
    rows = -(-len(sizes) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
    drawn = {"title": title or "", "panels": []}
    for ax, nbytes in zip(axes.flat, sizes):
        panel = {"bytes": nbytes, "lines": []}
        drawn["panels"].append(panel)
        for comm in sorted({r["comm"] for r in records if r["bytes"] == nbytes}):
            points = sorted((r for r in records if r["bytes"] == nbytes and r["comm"] == comm),
                            key=lambda r: r["ranks"])
            ranks = [r["ranks"] for r in points]
            median = [r["median_s"] * 1e3 for r in points]
            spread = [[(r["median_s"] - r["min_s"]) * 1e3 for r in points],
                      [(r["max_s"] - r["median_s"]) * 1e3 for r in points]]
            color = dict(zip(names(), PALETTE)).get(comm)
            ax.errorbar(ranks, median, yerr=spread, marker="o", ms=4, capsize=2, label=comm, color=color)
            panel["lines"].append({"comm": comm, "ranks": ranks, "median_ms": _round(median),
                                   "below_ms": _round(spread[0]), "above_ms": _round(spread[1])})
            if profile and comm in names():
                servers = points[0].get("num_servers") or 1
                predicted = [model.predict(comm, nbytes, p, profile, servers) * 1e3 for p in ranks]
                ax.plot(ranks, predicted, "--", color=color, alpha=0.6)
                panel["lines"][-1]["model_ms"] = _round(predicted)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(human_bytes(nbytes))
        ax.set_xlabel("ranks (ps: workers)")
        ax.set_ylabel("ms per allreduce")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(sizes):]:
        ax.set_visible(False)
    if title:
        figure.suptitle(title + ("   (dashed: fitted model)" if profile else ""))
    figure.tight_layout()
    figure.savefig(path, dpi=110, metadata={DATA_KEY: json.dumps(drawn, sort_keys=True)})
    plt.close(figure)
    return path


def figure_data(path):
    """What the figure at ``path`` draws (the JSON written with it), or None if it carries none."""
    from PIL import Image
    with Image.open(path) as image:
        text = image.text.get(DATA_KEY)
    return json.loads(text) if text else None


def _round(values):
    return [float(f"{v:.4g}") for v in values]
