"""InnerProduct: a fully connected layer, y = x W^T + b, as one GEMM.

Caffe type "InnerProduct", inner_product_param:
  num_output     N, the output size (required)
  bias_term      learn a bias of shape (N,) (default true)
  weight_filler  default constant 0; bias_filler default constant 0
  axis           first axis flattened into the input vector (default 1): the
                 bottom is viewed as (M, K) with M = count(0, axis), K = count(axis)
  transpose      store the weight as (K, N) instead of (N, K) (default false)

The top has shape bottom.shape[:axis] + (N,).

  engine         firecaffe's: CAFFE runs the dense NumPy path (no oneDNN, no sparse forward)

On the CPU, a weight of density at most FIRECAFFE_SPARSE_DENSITY (0.10) in a layer
that needs no weight gradient (TEST nets) runs a SciPy CSR product (firecaffe/ops/
sparse_ip.py); float32 layers of 2^20 or more multiply-adds run oneDNN's inner
product where the library loaded (firecaffe/ops/dnnl/ip.py: faster than
OpenBLAS's matmuls on these shapes); the rest, and CuPy arrays, the matmuls below.
The layer reads its weights through ``Blob.weights`` (not an exposure: core/blob.py).
"""
import time

from ..core import backend
from . import dnnl, register
from .base import Layer
from .dnnl import ip as dnnl_ip
from .sparse_ip import SparseWeight


@register("InnerProduct")
class InnerProduct(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.inner_product_param
        if p.num_output <= 0:
            self.fail("inner_product_param.num_output must be set to a positive number")
        self.num_output = int(p.num_output)
        self.bias_term = bool(p.bias_term)
        self.transpose = bool(p.transpose)
        self.axis = self._axis(bottom[0])
        self.k = bottom[0].count_range(self.axis)
        self.use_dnnl = dnnl.AVAILABLE and p.engine != p.CAFFE
        shape = (self.k, self.num_output) if self.transpose else (self.num_output, self.k)
        self.make_blob(shape, p.weight_filler)
        if self.bias_term:
            self.make_blob((self.num_output,), p.bias_filler)
        self.sparse = SparseWeight(self)

    def _axis(self, blob):
        try:
            return blob.canonical_axis(self.param.inner_product_param.axis)
        except ValueError as exc:
            self.fail(str(exc))

    def reshape(self, bottom, top):
        self.axis = self._axis(bottom[0])
        k = bottom[0].count_range(self.axis)
        if k != self.k:
            self.fail(f"input size incompatible with the weights: bottom {tuple(bottom[0].shape)} "
                      f"flattened from axis {self.axis} has {k} values per row, the weight "
                      f"{tuple(self.blobs[0].shape)} expects {self.k}")
        self.m = bottom[0].count_range(0, self.axis)
        top[0].reshape(tuple(bottom[0].shape[:self.axis]) + (self.num_output,))

    @property
    def engine_name(self):
        """The CPU engine of this layer, as `firecaffe time` prints it."""
        sparse = self.sparse.engine_name()
        return sparse or (dnnl.VERSION if dnnl_ip.wanted(self, self.blobs[0].weights) else "NumPy")

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.m, self.k)
        w = self.blobs[0].weights
        y = top[0].data.reshape(self.m, self.num_output)
        timed = self.sparse.allowed              # a training layer never runs sparse: nothing to time
        began = time.perf_counter() if timed else 0.0
        if not (timed and self.sparse.forward(self, x, y)) and not dnnl_ip.forward(self, x, y):
            xp = backend.xp_of(x)
            xp.matmul(x, w if self.transpose else w.T, out=y)
            if self.bias_term:
                y += self.blobs[1].weights
        if timed:
            self.sparse.took(self.m, time.perf_counter() - began)

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff.reshape(self.m, self.num_output)
        x = bottom[0].data.reshape(self.m, self.k)
        w = self.blobs[0]
        dx = bottom[0].diff.reshape(self.m, self.k) if propagate_down[0] else None
        if dnnl_ip.backward(self, x, dy, dx):
            return
        if self.transpose:
            w.diff += x.T @ dy
        else:
            w.diff += dy.T @ x
        if self.bias_term:
            self.blobs[1].diff += dy.sum(axis=0)
        if dx is not None:
            dx[...] = dy @ w.weights.T if self.transpose else dy @ w.weights

    def flops(self, bottom, top):
        m, k = bottom[0].count_range(0, self.axis), self.k
        return 2 * m * k * self.num_output + (m * self.num_output if self.bias_term else 0)
