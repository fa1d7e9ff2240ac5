"""Magnitude pruning (Han et al. 2015/2016): keep a layer's largest weights.

Two ways to set a layer's threshold, as the paper does: a quality parameter times the standard
deviation of the layer's weights, or the density to keep (the threshold is then the magnitude
of the weight at that rank, found with ``np.partition``, no sort of the whole layer).
Weights already zero stay pruned: a density counts from the layer's full size, so an iterative
schedule (0.5, then 0.3, ...) prunes further each time.
"""
import numpy as np


def mask_by_density(weights, density):
    """Boolean mask keeping the ``round(density * size)`` largest magnitudes (at least one)."""
    weights = np.asarray(weights, dtype=np.float32)
    size = weights.size
    keep = max(1, int(round(density * size)))
    if keep >= size:
        return weights != 0 if density < 1 else np.ones(weights.shape, bool)
    magnitude = np.abs(weights).reshape(-1)
    magnitude.partition(size - keep)                   # in place: one copy of the layer, no sort
    threshold = magnitude[size - keep]
    del magnitude
    mask = np.abs(weights) >= threshold
    if threshold == 0:
        mask &= weights != 0
    return mask


def mask_by_quality(weights, quality):
    """Boolean mask keeping the weights whose magnitude exceeds ``quality`` x std of the layer."""
    weights = np.asarray(weights, dtype=np.float32)
    threshold = quality * float(weights.std(dtype=np.float64))
    return np.abs(weights) > threshold


def mask_for(weights, density=None, quality=None):
    if density is not None:
        return mask_by_density(weights, density)
    return mask_by_quality(weights, quality)
