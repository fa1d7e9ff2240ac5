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
    magnitude = np.abs(np.asarray(weights, dtype=np.float32)).reshape(-1)
    keep = max(1, int(round(density * magnitude.size)))
    if keep >= magnitude.size:
        return (magnitude > 0).reshape(np.shape(weights)) if density < 1 else np.ones(np.shape(weights), bool)
    threshold = np.partition(magnitude, magnitude.size - keep)[magnitude.size - keep]
    mask = magnitude >= threshold
    mask &= magnitude > 0
    return mask.reshape(np.shape(weights))


def mask_by_quality(weights, quality):
    """Boolean mask keeping the weights whose magnitude exceeds ``quality`` x std of the layer."""
    weights = np.asarray(weights, dtype=np.float32)
    threshold = quality * float(weights.std(dtype=np.float64))
    return np.abs(weights) > threshold


def mask_for(weights, density=None, quality=None):
    if density is not None:
        return mask_by_density(weights, density)
    return mask_by_quality(weights, quality)
