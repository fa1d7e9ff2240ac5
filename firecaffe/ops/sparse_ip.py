"""InnerProduct's sparse forward on the CPU: y = x W^T + b with W held as a SciPy CSR copy.

Where a layer's weight is sparse enough (a pruned net: ``firecaffe compress``), SciPy's compiled
CSR product beats the dense GEMM (benchmarks/sparse_ip.py, docs/compression.md). It may run when:
  - the arrays are NumPy's, SciPy imports, and inner_product_param.engine is not CAFFE;
  - no weight gradient is wanted from the layer (a TEST net, or lr_mult 0 on the weight): in
    training the weights change every step and the copy would be rebuilt for each forward;
  - the weight's density (nonzeros / count) is at most FIRECAFFE_SPARSE_DENSITY (default 0.10).

Never stale. The array behind the weight says how it can change (core/blob.py): the engine's own
writes (the solver, communicators, loading weights, share_with) bump ``weights_epoch``; a pycaffe
script that was handed the array through ``blob.data`` (``storage.exposed``) may write through it
at any time, unseen. So the copy is used as is while the epoch stands still and the storage is
not exposed; otherwise it is verified first, exactly (a sample of its values, then the count of
nonzeros and all its values: O(n)), and dropped where it differs.

Never much slower than dense. Scans and builds cost O(n) (one to twenty dense GEMVs), so each is
bought only once the dense forwards it would save have cost as much (ski rental, on this layer's
measured times): after a change the layer runs dense; a weight that was sparse before gets its
copy rebuilt once the dense forwards lost a build's time against sparse ones; a weight not known
sparse is scanned once the dense forwards took ``SCAN_RATIO`` scans' time (a dense net's test
passes pay at most 1/SCAN_RATIO more). At a batch size where the sparse forward (with its
verification, for exposed weights) was measured slower, the layer runs dense, probing the sparse
path again every ``PROBE_EVERY`` forwards unless it lost by more than 2x.
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


SCAN_RATIO = 10
PROBE_EVERY = 32
MIN_MACS = 1 << 20      # below this many multiply-adds a forward runs dense, untouched by the above
                        # (LeNet's ip1 at batch 1: the checks cost more than SciPy could save)


class SparseWeight:
    """One InnerProduct's CSR copy of its weight, the state that says whether it is current, and
    the times (seconds, measured on this layer) that say whether building it pays."""

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
        self.density = None         # of self.array at self.epoch (None: not scanned since a change)
        self.was_sparse = False     # the weights before the last change were sparse
        self.costs = Costs()
        # the last forward: ran sparse; scanned, built or verified in vain; ran dense, measured faster
        self.used = self.busy = self.slower = False

    def wanted(self, x, w):
        return (self.allowed and type(x) is np.ndarray and type(w) is np.ndarray and x.shape[0] * w.size >= MIN_MACS
                and scipy_sparse() is not None)

    def current(self, blob, rows):
        """The CSR copy for ``blob``'s weights as they are now, or None (run dense)."""
        w, epoch = blob.weights, blobs.weights_epoch()
        still = w is self.array and epoch == self.epoch        # no engine write, no rebinding since
        if self.matrix is not None and w is self.array:
            if not self.costs.prefer_sparse(rows):
                self.slower = self.costs.timed(rows)    # dense measured faster (not a timing probe)
                return None             # (the copy is checked when next used)
            if (still and not blob.storage.exposed) or self._verified(w):
                self.epoch = epoch
                return self.matrix
            self.busy = True
        elif still:
            return self._unchanged(w, rows)
        self.was_sparse = (self.matrix is not None or (self.density <= self.threshold if self.density is not None
                                                        else self.was_sparse))
        self.matrix, self.flat, self.array, self.epoch, self.density = None, None, w, epoch, None
        self.costs.changed()
        if self.costs.scan_s is None:   # the first look at this layer: scan now
            self._scan(w)
        return None                     # changed: this forward dense

    def _unchanged(self, w, rows):
        """No copy, the weights as the last forward saw them: scan or build once it pays."""
        if self.density is None and not self.was_sparse:
            if self.costs.scan_pays():
                self._scan(w)
            return None
        if (self.density is None or self.density <= self.threshold) and self.costs.build_pays(rows):
            self._build(w)
            return self.matrix if self.costs.prefer_sparse(rows) else None
        return None

    def _scan(self, w):
        began = time.perf_counter()
        self.density = np.count_nonzero(w) / max(w.size, 1)
        self.costs.scan_s, self.busy = time.perf_counter() - began, True

    def _verified(self, w):
        """Whether the copy holds ``w`` exactly: its values at its positions (a sample first), and
        as many nonzeros."""
        m, values = self.matrix, w.reshape(-1)
        head = min(m.nnz, 256)
        return (np.array_equal(values[self.flat[:head]], m.data[:head])
                and np.count_nonzero(w) == m.nnz and np.array_equal(values[self.flat], m.data))

    def _build(self, w):
        began = time.perf_counter()
        matrix = scipy_sparse().csr_matrix(w.T if self.transpose else w)
        self.density, self.busy = matrix.nnz / max(w.size, 1), True
        if self.density <= self.threshold:
            row = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
            col = matrix.indices
            self.matrix = matrix
            self.flat = col * w.shape[1] + row if self.transpose else row * w.shape[1] + col
        self.costs.built(time.perf_counter() - began)

    def forward(self, layer, x, y):
        """y = x W^T (+ b) from the CSR copy (x, y 2-D views); False where it runs dense."""
        blob = layer.blobs[0]
        self.used = self.busy = self.slower = False
        matrix = self.current(blob, x.shape[0]) if self.wanted(x, blob.weights) else None
        if matrix is None:
            return False
        self.used = True
        y[...] = (matrix @ x.T).T
        if layer.bias_term:
            y += layer.blobs[1].weights
        return True

    def took(self, rows, seconds):
        """The time of this layer's last forward (dense or sparse, as ``used`` says)."""
        if self.array is not None and not self.busy:
            self.costs.took(rows, seconds, self.used)

    def engine_name(self):
        """"sparse (...)" where the last forward ran sparse, or did not for want of a copy of weights
        sparse enough; None where it ran dense (dense measured faster at its batch size, or not sparse)."""
        if self.used or (self.allowed and not self.slower and self.density is not None
                         and self.density <= self.threshold):
            return f"sparse (SciPy CSR, {self.density:.1%} of the weights)"
        return None


class Costs:
    """A layer's measured times (seconds) and the ski-rental sums since the weights last changed."""

    def __init__(self):
        self.scan_s = self.build_s = None
        self.dense_s, self.sparse_s = {}, {}     # batch rows -> a forward's time (recent, robust)
        self.spent = self.lost = 0.0             # since the change: dense time; time lost to sparse
        self.calls = 0

    def changed(self):
        self.spent = self.lost = 0.0

    def took(self, rows, seconds, sparse):
        _keep(self.sparse_s if sparse else self.dense_s, rows, seconds)
        if not sparse:
            self.spent += seconds
            dense, fast = self.dense_s.get(rows), self.sparse_s.get(rows)
            if fast is not None:
                self.lost += dense - fast

    def scan_pays(self):
        return self.spent >= SCAN_RATIO * self.scan_s

    def build_pays(self, rows):
        """The first build, or one at a batch size not timed sparse yet, at once; later ones once
        the dense forwards since the change lost a build's time."""
        return self.build_s is None or rows not in self.sparse_s or self.lost >= self.build_s

    def built(self, seconds):
        self.build_s = seconds

    def timed(self, rows):
        return rows in self.dense_s and rows in self.sparse_s

    def prefer_sparse(self, rows):
        dense, sparse = self.dense_s.get(rows), self.sparse_s.get(rows)
        if dense is None:
            return sparse is None       # timed sparse, not dense: a dense forward to compare
        if sparse is None or sparse <= dense:
            return True
        self.calls += 1
        return sparse < 2 * dense and self.calls % PROBE_EVERY == 0


def _keep(times, rows, seconds):
    """The smaller of the new time and the last one grown by 10% (a spike of load fades)."""
    old = times.get(rows)
    times[rows] = seconds if old is None else min(seconds, 1.1 * old)
