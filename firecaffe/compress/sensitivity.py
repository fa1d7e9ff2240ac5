"""Pruning sensitivity (Han et al. 2015, Figure 5): test accuracy when one layer alone is pruned
to each density, without retraining; one curve per layer, drawn to a PNG (matplotlib: the
optional 'plot' extra)."""
import numpy as np

from ..errors import FirecaffeError
from . import prune

DENSITIES = (1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.05)


def check_can_draw(path):
    """Before any work: matplotlib is there (the 'plot' extra)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401
    except ImportError:
        raise FirecaffeError(f"--sensitivity {path}: drawing needs matplotlib: pip install 'firecaffe[plot]'") \
            from None


def measure(weights, layers, score, densities=DENSITIES):
    """{layer: [(density, accuracy)]}; ``score(weights)`` tests the net with those weights."""
    curves = {}
    for name in layers:
        original = weights.weight(name).copy()
        points = []
        for density in densities:
            weights.set_weight(name, np.where(prune.mask_by_density(original, density), original, 0))
            points.append((density, score(weights)))
        weights.set_weight(name, original)
        curves[name] = points
    return curves


def draw(curves, path, metric="accuracy"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, points in curves.items():
        xs, ys = zip(*points)
        ax.plot([100 * x for x in xs], ys, marker="o", markersize=3, label=name)
    ax.set_xlabel("weights kept (%)")
    ax.set_ylabel(f"test {metric} (no retraining)")
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Pruning sensitivity, one layer at a time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
