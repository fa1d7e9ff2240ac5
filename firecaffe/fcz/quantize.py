"""Weight sharing: 1-D k-means with linear initialisation (Deep Compression, section 3).

The centroids start evenly spaced between the smallest and largest weight (the paper's
linear initialisation, which keeps the rare large weights represented) and Lloyd's
iterations move them. In one dimension a cluster is a run of the sorted weights, so an
iteration is a ``searchsorted`` of the k-1 midpoints into the sorted weights and one
``add.reduceat`` over them: O(n) time and no n x k matrix; the memory is one sorted copy.
"""
import numpy as np


def kmeans_1d(values, k, iterations=50):
    """Centroids (float32, ascending, ``k`` of them or fewer distinct) of ``values`` (1-D)."""
    values = np.sort(np.asarray(values, dtype=np.float32).ravel())
    n = values.size
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    low, high = float(values[0]), float(values[-1])
    centroids = np.linspace(low, high, k) if k > 1 else np.array([float(values.mean(dtype=np.float64))])
    for _ in range(iterations if k > 1 else 0):
        starts = np.concatenate([[0], np.searchsorted(values, (centroids[:-1] + centroids[1:]) / 2)])
        counts = np.diff(np.append(starts, n))
        full = counts > 0
        sums = np.add.reduceat(values, np.minimum(starts, n - 1), dtype=np.float64)
        moved = centroids.copy()
        moved[full] = sums[full] / counts[full]
        if np.array_equal(moved, centroids):
            break
        centroids = moved
    return centroids.astype(np.float32)


def assign(values, centroids):
    """Index of the nearest centroid (ascending ``centroids``) for each value."""
    centroids = np.asarray(centroids, dtype=np.float64)
    if centroids.size == 1:
        return np.zeros(np.shape(values), dtype=np.int64)
    bounds = (centroids[:-1] + centroids[1:]) / 2
    return np.searchsorted(bounds, values, side="right")


def codebook_for(values, k):
    """(codebook, codes) for ``values``: the distinct values themselves when there are at most ``k``
    (weights already shared: lossless), else k-means centroids and nearest-centroid codes."""
    values = np.asarray(values, dtype=np.float32).ravel()
    distinct = np.unique(values)
    if distinct.size <= k:
        return distinct, np.searchsorted(distinct, values)
    centroids = kmeans_1d(values, k)
    return centroids, assign(values, centroids)
