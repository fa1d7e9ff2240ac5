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
    """One InnerProduct's CSR copy of its weight and the state that says whether it is current."""

    def __init__(self, layer):
        p = layer.param.inner_product_param
        spec = layer.param.param
        self.threshold = environment().sparse_density
        self.allowed = (self.threshold > 0 and p.engine != p.CAFFE
                        and (layer.phase == "TEST" or (len(spec) > 0 and spec[0].lr_mult == 0)))
        self.transpose = layer.transpose
        self.matrix = None          # csr of W as (N, K)
        self.array = None           # the weight array the state below describes
        self.epoch = None           # weights_epoch when last checked
        self.density = None         # of self.array at self.epoch
        self.pending = None         # epoch at which a dense forward saw changed sparse weights
        self.used = False           # the last forward ran sparse

    def wanted(self, x, w):
        return self.allowed and type(x) is np.ndarray and type(w) is np.ndarray and scipy_sparse() is not None

    def current(self, blob):
        """The CSR copy for ``blob``'s weights as they are now, or None (run dense)."""
        w, epoch = blob.weights, blobs.weights_epoch()
        still = w is self.array and epoch == self.epoch        # no engine write, no rebinding since
        if self.matrix is not None and w is self.array:
            if (still and not blob.storage.exposed) or self._verified(w):
                self.epoch = epoch
                return self.matrix
        elif still:                     # no copy: dense weights, or sparse ones seen a forward ago
            if self.pending is not None:
                self.matrix, self.pending = self._build(w), None
            return self.matrix
        self.matrix, self.array, self.epoch = None, w, epoch
        self.density = np.count_nonzero(w) / max(w.size, 1)
        self.pending = epoch if self.density <= self.threshold else None
        return None                     # changed: this forward dense, the copy on the next

    def _verified(self, w):
        m = self.matrix
        if np.count_nonzero(w) != m.nnz:
            return False
        rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
        picked = w[m.indices, rows] if self.transpose else w[rows, m.indices]
        return np.array_equal(picked, m.data)

    def _build(self, w):
        return scipy_sparse().csr_matrix(w.T if self.transpose else w)

    def forward(self, layer, x, y):
        """y = x W^T (+ b) from the CSR copy (x, y 2-D views); False where it runs dense."""
        blob = layer.blobs[0]
        matrix = self.current(blob) if self.wanted(x, blob.weights) else None
        self.used = matrix is not None
        if matrix is None:
            return False
        y[...] = (matrix @ x.T).T
        if layer.bias_term:
            y += layer.blobs[1].weights
        return True

    def engine_name(self):
        """"sparse (...)" where the last forward ran sparse or the next builds the copy, else None."""
        if self.used or self.pending is not None:
            return f"sparse (SciPy CSR, {self.density:.1%} of the weights)"
        return None
