"""InnerProduct's sparse forward on the CPU: y = x W^T + b with W held as a SciPy CSR copy.

Where a layer's weight is sparse enough (a pruned net: ``firecaffe compress``), SciPy's compiled
CSR product beats the dense GEMM (benchmarks/sparse_ip.py, docs/compression.md). It runs when:
  - the arrays are NumPy's, SciPy imports, and inner_product_param.engine is not CAFFE;
  - no weight gradient is wanted from the layer (a TEST net, or lr_mult 0 on the weight): in
    training the weights change every step and the copy would be rebuilt for each forward;
  - the weight's density (nonzeros / count) is at most FIRECAFFE_SPARSE_DENSITY (default 0.10).

The copy must never be used after the weights changed. The array behind the weight says how it
can change (core/blob.py): the engine's own writes (the solver, communicators, loading weights,
share_with) bump ``weights_epoch``; a pycaffe script that was handed the array through
``blob.data`` (``storage.exposed``) may write through it at any time, unseen. So the copy is used
as is while the epoch stands still and the storage is not exposed; otherwise it is verified first
(an O(n) scan: the count of nonzeros and the values at the copy's positions, both exact) and
rebuilt where it differs. After a change the first forward runs dense and the copy is built on
the next one if the weights did not move in between (a loop that changes them before every
forward, as training does, never pays a build).
"""
import time

import numpy as np

from ..core import blob as blobs
from ..core.log import LOGGER
from ..core.options import environment

_scipy = []                     # [scipy.sparse or None], imported on first need


def scipy_sparse():
    """scipy.sparse, or None where SciPy cannot be imported (then every layer runs dense)."""
    if not _scipy:
        try:
            import scipy.sparse as sparse
        except Exception as exc:        # absent, or a broken install: the dense path, one line
            LOGGER.debug(f"InnerProduct runs dense only: SciPy cannot be imported ({exc})")
            sparse = None
        _scipy.append(sparse)
    return _scipy[0]


class SparseWeight:
    """One InnerProduct's CSR copy of its weight, the state that says whether it is current, and
    the times that say whether building it pays (seconds, measured on this layer)."""

    def __init__(self, layer):
        p = layer.param.inner_product_param
        spec = layer.param.param
        self.threshold = environment().sparse_density
        self.allowed = (self.threshold > 0 and p.engine != p.CAFFE
                        and (layer.phase == "TEST" or (len(spec) > 0 and spec[0].lr_mult == 0)))
        self.transpose = layer.transpose
        self.matrix = None          # csr of W as (N, K)
        self.flat = None            # the copy's positions in the weight array (for verifying)
        self.array = None           # the weight array the state below describes
        self.epoch = None           # weights_epoch when last checked
        self.density = None         # of self.array at self.epoch
        self.pending = False        # sparse weights without a copy yet
        self.lost = 0.0             # seconds dense forwards lost since then (estimated)
        self.build_s = None         # the last build's time
        self.dense_s, self.sparse_s = {}, {}     # batch rows -> a forward's time, smoothed
        self.used = False           # the last forward ran sparse

    def wanted(self, x, w):
        return self.allowed and type(x) is np.ndarray and type(w) is np.ndarray and scipy_sparse() is not None

    def current(self, blob, rows):
        """The CSR copy for ``blob``'s weights as they are now, or None (run dense)."""
        w, epoch = blob.weights, blobs.weights_epoch()
        still = w is self.array and epoch == self.epoch        # no engine write, no rebinding since
        nonzeros = None
        if self.matrix is not None and w is self.array:
            if still and not blob.storage.exposed:
                return self._if_faster(rows)
            nonzeros = np.count_nonzero(w)
            if self._verified(w, nonzeros):
                self.epoch = epoch
                return self._if_faster(rows)
        elif still:                     # no copy: dense weights, or sparse ones since a change
            if self.pending and self._pays(rows):
                began = time.perf_counter()
                self._build(w)
                self.build_s, self.pending = time.perf_counter() - began, False
            return self._if_faster(rows)
        self.matrix, self.flat, self.array, self.epoch, self.lost = None, None, w, epoch, 0.0
        nonzeros = np.count_nonzero(w) if nonzeros is None else nonzeros
        self.density = nonzeros / max(w.size, 1)
        self.pending = self.density <= self.threshold
        return None                     # changed: this forward dense, the copy perhaps on the next

    def _verified(self, w, nonzeros):
        """Whether the copy holds ``w`` exactly: as many nonzeros, the same values at its positions."""
        return nonzeros == self.matrix.nnz and np.array_equal(w.reshape(-1)[self.flat], self.matrix.data)

    def _pays(self, rows):
        """Ski rental: build once the dense forwards since the change lost as much as a build costs
        (the first build, and a batch size not timed yet, at once)."""
        dense, sparse = self.dense_s.get(rows), self.sparse_s.get(rows)
        if self.build_s is None or dense is None or sparse is None:
            return True
        self.lost += dense - sparse
        return self.lost >= self.build_s

    def _if_faster(self, rows):
        dense, sparse = self.dense_s.get(rows), self.sparse_s.get(rows)
        return None if self.matrix is None or (dense is not None and sparse is not None and dense < sparse) \
            else self.matrix

    def _build(self, w):
        self.matrix = scipy_sparse().csr_matrix(w.T if self.transpose else w)
        row = np.repeat(np.arange(self.matrix.shape[0]), np.diff(self.matrix.indptr))
        col = self.matrix.indices
        self.flat = col * w.shape[1] + row if self.transpose else row * w.shape[1] + col

    def forward(self, layer, x, y):
        """y = x W^T (+ b) from the CSR copy (x, y 2-D views); False where it runs dense."""
        blob = layer.blobs[0]
        matrix = self.current(blob, x.shape[0]) if self.wanted(x, blob.weights) else None
        self.used = matrix is not None
        if matrix is None:
            return False
        began = time.perf_counter()
        y[...] = (matrix @ x.T).T
        if layer.bias_term:
            y += layer.blobs[1].weights
        _smooth(self.sparse_s, x.shape[0], time.perf_counter() - began)
        return True

    def ran_dense(self, rows, seconds):
        """The time of a dense forward of this layer (kept where the sparse one is a choice)."""
        if self.pending or self.matrix is not None:
            _smooth(self.dense_s, rows, seconds)

    def engine_name(self):
        """"sparse (...)" where the last forward ran sparse or the next may build the copy, else None."""
        if self.used or (self.pending and self.allowed):
            return f"sparse (SciPy CSR, {self.density:.1%} of the weights)"
        return None


def _smooth(times, rows, seconds):
    old = times.get(rows)
    times[rows] = seconds if old is None else 0.7 * old + 0.3 * seconds
