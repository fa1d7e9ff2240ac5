"""Figures of benchmark records: time against ranks, one line per strategy, one panel per size."""
from ...comm import names
from . import model
from .comm import human_bytes

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
    for ax, nbytes in zip(axes.flat, sizes):
        for comm in sorted({r["comm"] for r in records if r["bytes"] == nbytes}):
            points = sorted((r for r in records if r["bytes"] == nbytes and r["comm"] == comm),
                            key=lambda r: r["ranks"])
            ranks = [r["ranks"] for r in points]
            median = [r["median_s"] * 1e3 for r in points]
            spread = [[(r["median_s"] - r["min_s"]) * 1e3 for r in points],
                      [(r["max_s"] - r["median_s"]) * 1e3 for r in points]]
            color = dict(zip(names(), PALETTE)).get(comm)
            ax.errorbar(ranks, median, yerr=spread, marker="o", ms=4, capsize=2, label=comm, color=color)
            if profile and comm in names():
                servers = points[0].get("num_servers") or 1
                ax.plot(ranks, [model.predict(comm, nbytes, p, profile, servers) * 1e3 for p in ranks],
                        "--", color=color, alpha=0.6)
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
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
