"""oneDNN's inner product in Caffe's geometry (firecaffe/ops/inner_product.py):
y (M, N) = x (M, K) W^T + b, the bottom viewed as (M, K) from ``axis`` on, the
weight (N, K), or (K, N) with ``transpose`` (the same memory described with
swapped strides). All on the plain arrays (no reorder): oneDNN's GEMM beat both
NumPy's OpenBLAS matmuls and its own blocked layouts with their reorders on
AlexNet's fc6-fc8 and LeNet's ip1 (benchmarks/ip_dnnl.py, docs/performance.md).
Below ``MIN_MKN`` multiply-adds NumPy was faster (LeNet's ip2, 32x500x10).
"""
from functools import lru_cache

import numpy as np

from . import api
from .api import call
from .prim import MemoryDesc, Primitive, PrimitiveDesc

MIN_MKN = 1 << 20


class IPGeometry:
    """The primitives of one shape; ``layout`` "any" lets oneDNN choose its layouts
    (reorders to and from the arrays in every call: benchmarks/ip_dnnl.py)."""

    def __init__(self, m, k, n, bias, transpose, layout="plain"):
        self.bias = bias
        x, y, b = MemoryDesc((m, k)), MemoryDesc((m, n)), MemoryDesc((n,)) if bias else None
        w = MemoryDesc((n, k), "transposed" if transpose else "plain")
        self.w_shape, self.b_shape = ((k, n) if transpose else (n, k)), (n,)
        self._compute = (x, w, y) if layout == "plain" else tuple(MemoryDesc(s, layout) for s in
                                                                  ((m, k), (n, k), (m, n)))
        cx, cw, cy = self._compute
        bh = b.handle if bias else None
        fwd = PrimitiveDesc(lambda out: call("dnnl_inner_product_forward_primitive_desc_create", out, api.ENGINE,
                                             api.FORWARD_TRAINING, cx.handle, cw.handle, bh, cy.handle, None))
        args = {api.ARG_SRC: (x, False), api.ARG_WEIGHTS: (w, False), api.ARG_DST: (y, True)}
        if bias:
            args[api.ARG_BIAS] = (b, False)
        self.forward = Primitive(fwd, args)
        self._descs, self._fwd_pd, self._prims = (x, w, b, y), fwd, {}

    def backward_data(self):
        """dx = dy W: {ARG_DIFF_DST: dy, ARG_WEIGHTS: w, ARG_DIFF_SRC: dx}."""
        if "data" not in self._prims:
            x, w, _, y = self._descs
            cx, cw, cy = self._compute
            pd = PrimitiveDesc(lambda out: call("dnnl_inner_product_backward_data_primitive_desc_create", out,
                                                api.ENGINE, cx.handle, cw.handle, cy.handle, self._fwd_pd.handle,
                                                None))
            self._prims["data"] = Primitive(pd, {api.ARG_DIFF_DST: (y, False), api.ARG_WEIGHTS: (w, False),
                                                 api.ARG_DIFF_SRC: (x, True)})
        return self._prims["data"]

    def backward_weights(self):
        """dW = dy^T x (and db = column sums of dy) into scratch arrays, returned."""
        if "weights" not in self._prims:
            x, w, b, y = self._descs
            cx, cw, cy = self._compute
            pd = PrimitiveDesc(lambda out: call(
                "dnnl_inner_product_backward_weights_primitive_desc_create", out, api.ENGINE, cx.handle,
                cw.handle, b.handle if self.bias else None, cy.handle, self._fwd_pd.handle, None))
            args = {api.ARG_SRC: (x, False), api.ARG_DIFF_DST: (y, False), api.ARG_DIFF_WEIGHTS: (w, True)}
            if self.bias:
                args[api.ARG_DIFF_BIAS] = (b, True)
            self._prims["weights"] = Primitive(pd, args)
            self._scratch = (np.empty(self.w_shape, np.float32), np.empty(self.b_shape, np.float32))
        return self._prims["weights"], self._scratch

    def impl(self):
        return "/".join(sorted({self.forward.impl} | {p.impl for p in self._prims.values()}))


@lru_cache(maxsize=64)
def geometry(m, k, n, bias, transpose):
    return IPGeometry(m, k, n, bias, transpose)


def wanted(layer, x):
    """Whether InnerProduct ``layer`` runs on oneDNN for the host array ``x``."""
    return (layer.use_dnnl and type(x) is np.ndarray and x.dtype == np.float32
            and layer.m * layer.k * layer.num_output >= MIN_MKN)


def _geometry(layer):
    try:
        return geometry(layer.m, layer.k, layer.num_output, layer.bias_term, layer.transpose)
    except api.DnnlError as exc:
        from . import refused
        refused(layer, exc)
        layer.use_dnnl = False
        return None


def forward(layer, x, y):
    """y = x W^T (+ b) on oneDNN (x, y 2-D views); False where the layer runs its NumPy path."""
    geo = _geometry(layer) if wanted(layer, x) else None
    if geo is None:
        return False
    args = {api.ARG_SRC: x, api.ARG_WEIGHTS: layer.blobs[0].weights, api.ARG_DST: y}
    if layer.bias_term:
        args[api.ARG_BIAS] = layer.blobs[1].weights
    geo.forward(args)
    return True


def backward(layer, x, dy, dx):
    """The parameter gradients added to the blobs' diffs (Caffe accumulates, oneDNN
    overwrites), and dx where not None; False where the layer runs its NumPy path."""
    geo = _geometry(layer) if wanted(layer, x) else None
    if geo is None:
        return False
    try:                                  # a refusal comes before anything is summed
        data_grad = geo.backward_data() if dx is not None else None
        weights_grad, (dw, db) = geo.backward_weights()
    except api.DnnlError as exc:
        from . import refused
        refused(layer, exc)
        layer.use_dnnl = False
        return False
    args = {api.ARG_SRC: x, api.ARG_DIFF_DST: dy, api.ARG_DIFF_WEIGHTS: dw}
    if layer.bias_term:
        args[api.ARG_DIFF_BIAS] = db
    weights_grad(args)
    layer.blobs[0].diff[...] += dw
    if layer.bias_term:
        layer.blobs[1].diff[...] += db
    if data_grad is not None:
        data_grad({api.ARG_DIFF_DST: dy, api.ARG_WEIGHTS: layer.blobs[0].weights, api.ARG_DIFF_SRC: dx})
    return True
