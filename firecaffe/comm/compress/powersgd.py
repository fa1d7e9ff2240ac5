"""PowerSGD (Vogels, Karimireddy and Jaggi, NeurIPS 2019): each weight gradient as a rank-r product.

A weight gradient is viewed as a matrix M (a convolution's (out, in*kh*kw), an inner
product's (out, in)); each rank adds its error-feedback residual to it, then

    P = M Q               (rows x r; Q: cols x r, the last step's, the same on every rank)
    P = allreduce(P);     P = orthonormal basis of P's columns (QR, in float64)
    Q = M^T P             (cols x r)
    Q = allreduce(Q)      the sum of the ranks' Q: the next step starts from it (warm start)
    sum of the M's ~ P Q^T;   residual = M - P Q^T / workers   (what this rank's share lost)

so a matrix costs (rows + cols) r numbers on the wire instead of rows cols. Vectors
(biases, scales) and parameters cut by a bucket's edge travel uncompressed in the same
allreduce as P. Both allreduces are the strategy's own, in float32, so PowerSGD works
with any allreduce (the MPI library's too). A rank r larger than a matrix's smaller side
is refused when the codec is bound to the net, naming the layer; with r equal to the
smaller side the product is exact (up to float rounding). Q starts as a seeded normal
matrix, the same on every rank; Q and the residual are solver state (snapshots keep them).
"""
import numpy as np

from ...errors import FirecaffeError
from ..topology import chunk_slices
from . import square_layout
from .codecs import Codec

SEED = 20190530


def matrix_shape(shape):
    """(rows, cols) of a parameter viewed as a matrix, or None for a vector or scalar."""
    shape = tuple(int(d) for d in shape)
    if len(shape) < 2:
        return None
    rows, cols = shape[0], int(np.prod(shape[1:]))
    return (rows, cols) if rows > 1 and cols > 1 else None


class PowerSGD(Codec):
    elementwise = False
    lossless = False
    feedback = True

    def __init__(self, spec, start=0):
        super().__init__(spec, start)
        self.rank = spec.rank
        self._q = {}               # a matrix's offset -> its Q (cols x rank, float32)

    def bind(self, params):
        super().bind(params)
        for param in self.params:
            shape = matrix_shape(param.shape)
            if shape is not None and self.rank > min(shape):
                raise FirecaffeError(
                    f"--compress {self.name}: {param.name} is a {shape[0]}x{shape[1]} matrix, whose rank is at "
                    f"most {min(shape)}; choose powersgd:{min(shape)} or less")

    def wire_bytes(self, n_bytes, shapes=None):
        count = int(n_bytes) // 4
        shapes = [param.shape for param in square_layout(count)] if shapes is None else shapes
        total = 0
        for shape in shapes:
            matrix = matrix_shape(shape)
            total += 4 * ((matrix[0] + matrix[1]) * self.rank if matrix else int(np.prod(shape)))
        return total

    def bucket_slices(self, size, elements):
        """Buckets of whole parameters (a matrix is compressed only whole), each at least ``elements``."""
        ends = sorted({param.offset + int(np.prod(param.shape)) for param in self.params} | {size})
        ends = [end for end in ends if 0 < end <= size]
        if not self.params:
            return chunk_slices(size, elements)
        buckets, start = [], 0
        for end in ends:
            if end - start >= elements or end == size:
                buckets.append(slice(start, end))
                start = end
        return buckets

    def state(self):
        state = super().state()
        if self._q:
            state["q"] = np.concatenate([self._q[offset].ravel() for offset in sorted(self._q)])
        return state

    def load_state(self, state):
        super().load_state(state)
        if "q" not in state:
            return
        flat, start = np.asarray(state["q"], np.float32), 0
        for param, (rows, cols) in self._matrices(0, None):
            self._q[param.offset] = flat[start:start + cols * self.rank].reshape(cols, self.rank).copy()
            start += cols * self.rank
        if start != flat.size:
            raise FirecaffeError(f"--compress {self.name}: the snapshot's PowerSGD state holds {flat.size} "
                                 f"values, this net's matrices need {start}; another net or rank?")

    def _matrices(self, at, end):
        """``(param, (rows, cols))`` of the matrices wholly inside arena elements ``at .. end``."""
        for param in self.params:
            shape = matrix_shape(param.shape)
            stop = param.offset + int(np.prod(param.shape))
            if shape is not None and param.offset >= at and (end is None or stop <= end):
                yield param, shape

    def reduce(self, buf, at, allreduce, workers):
        """Sum ``buf`` (arena elements ``at ..``) over ``workers`` ranks; ``allreduce`` sums float32 arrays."""
        if not self.active:
            allreduce(buf)
            return
        if not self.params:
            self.bind([param._replace(offset=at) for param in square_layout(buf.size)])
        residual = self.residual(at, buf.size)
        buf += residual
        residual[...] = 0.0
        matrices = [(slice(param.offset - at, param.offset - at + rows * cols), rows, cols, param.offset)
                    for param, (rows, cols) in self._matrices(at, at + buf.size)]
        rest = _uncovered(buf.size, [m[0] for m in matrices])
        r = self.rank
        sizes = [rows * r for _, rows, _, _ in matrices]
        first = np.empty(sum(sizes) + sum(s.stop - s.start for s in rest), np.float32)
        start = 0
        for (where, rows, cols, offset), size in zip(matrices, sizes):
            q = self._q.get(offset)
            if q is None:
                q = self._q[offset] = np.random.default_rng([SEED, offset]).standard_normal(
                    (cols, r)).astype(np.float32)
            np.matmul(buf[where].reshape(rows, cols), q, out=first[start:start + size].reshape(rows, r))
            start += size
        for where in rest:
            first[start:start + where.stop - where.start] = buf[where]
            start += where.stop - where.start
        if first.size:
            allreduce(first)
        second = np.empty(sum(cols * r for _, _, cols, _ in matrices), np.float32)
        bases, start, at_q = [], 0, 0
        for (where, rows, cols, offset), size in zip(matrices, sizes):
            basis = np.linalg.qr(first[start:start + size].reshape(rows, r).astype(np.float64))[0]
            bases.append(basis.astype(np.float32))
            np.matmul(buf[where].reshape(rows, cols).T, bases[-1], out=second[at_q:at_q + cols * r].reshape(cols, r))
            start, at_q = start + size, at_q + cols * r
        for where in rest:
            buf[where] = first[start:start + where.stop - where.start]
            start += where.stop - where.start
        if second.size:               # (every rank has the same matrices: all skip it or none)
            allreduce(second)
        at_q = 0
        for (where, rows, cols, offset), basis in zip(matrices, bases):
            q = self._q[offset] = second[at_q:at_q + cols * r].reshape(cols, r).copy()
            at_q += cols * r
            total = basis @ q.T
            mine, lost = buf[where].reshape(rows, cols), residual[where].reshape(rows, cols)
            np.divide(total, np.float32(workers), out=lost)          # in place: no temporaries of M's size
            np.subtract(mine, lost, out=lost)
            mine[...] = total


def _uncovered(size, covered):
    """The slices of ``range(size)`` outside the sorted, disjoint slices ``covered``."""
    gaps, start = [], 0
    for piece in sorted(covered, key=lambda s: s.start):
        if piece.start > start:
            gaps.append(slice(start, piece.start))
        start = piece.stop
    if start < size:
        gaps.append(slice(start, size))
    return gaps
