"""oneDNN's binary primitive for the element-wise passes of the BatchNorm -> Scale -> ReLU chain
(BatchNorm.forward_chain, ops/batch_norm.py; engine/fusion.py plans the chain).

Forward, with the per-channel mean, standard deviation, scale and bias already computed (by
NumPy, in Caffe's order of summation), two primitives on the plain (n, channels, inner) arrays:
``normalize`` x_norm = (x - mean) / std (binary sub, a binary div post-op) and ``affine``
y = x_norm * s (+ b) then the ReLU (binary mul, a binary add post-op, eltwise relu and, for slope
0, a linear + 0 as the convolution's fusion does: ops/dnnl/conv.py). Each is one IEEE operation
per element in the layers' order, so the results are the NumPy passes' bit for bit (tested with
NaN and infinities: tests/engine/test_norm_chain.py); oneDNN's jit kernels do them in one pass
over the blob each, where NumPy's per-block calls on a column broadcast ran 3-4x slower
(benchmarks/norm_chain.py). Where oneDNN has only its reference kernel for a shape the NumPy
passes run.
"""
import ctypes
from contextlib import contextmanager

from . import api
from .api import call
from .prim import MemoryDesc, Primitive, PrimitiveDesc


@contextmanager
def _attr(binaries, column, slope):
    """Attributes with binary post-ops (``binaries``: algorithm kinds, each with a per-channel
    operand of ``column``), then the ReLU of ``slope`` (None: none)."""
    attr, ops = api.P(), api.P()
    call("dnnl_post_ops_create", ctypes.byref(ops))
    try:
        for alg in binaries:
            call("dnnl_post_ops_append_binary", ops, alg, column.handle)
        if slope is not None:
            call("dnnl_post_ops_append_eltwise", ops, api.ELTWISE_RELU, float(slope), 0.0)
            if slope == 0:          # alpha * s is -0 for s < 0; + 0 gives the ReLU layer's +0
                call("dnnl_post_ops_append_eltwise", ops, api.ELTWISE_LINEAR, 1.0, 0.0)
        call("dnnl_primitive_attr_create", ctypes.byref(attr))
        try:
            call("dnnl_primitive_attr_set_post_ops", attr, ops)
            yield attr
        finally:
            api.LIB.dnnl_primitive_attr_destroy(attr)
    finally:
        api.LIB.dnnl_post_ops_destroy(ops)


def _binary(alg, full, column, binaries=(), slope=None):
    """A binary primitive dst = (src0 alg src1) then ``binaries`` and the ReLU, src0 and dst of
    descriptor ``full``, src1 and each post-op operand one value per channel (``column``)."""
    with _attr(binaries, column, slope) as attr:
        pd = PrimitiveDesc(lambda out: call("dnnl_binary_primitive_desc_create", out, api.ENGINE, alg,
                                            full.handle, column.handle, full.handle, attr))
    args = {api.ARG_SRC: (full, False), api.ARG_SRC_1: (column, False), api.ARG_DST: (full, True)}
    for k in range(len(binaries)):
        args[api.post_op_arg(k)] = (column, False)
    return Primitive(pd, args)


class ChainForward:
    """The chain's two forward primitives for an (n, channels, inner) float32 shape; ``fast``
    False where oneDNN would run a reference kernel (then the NumPy passes run)."""

    def __init__(self, shape, bias, slope):
        # (n, c) where inner is 1: oneDNN 3.2's jit binary post-ops broadcast a (1, c, 1) operand
        # over an (n, c, 1) destination wrongly (tested: every n > 1, c > 1), a (1, c) over (n, c) right
        self.view = tuple(shape[:2]) if shape[2] == 1 else tuple(shape)
        self.column = (1, shape[1]) + (1,) * (len(self.view) - 2)
        full, column = MemoryDesc(self.view), MemoryDesc(self.column)
        self.normalize = _binary(api.BINARY_SUB, full, column, (api.BINARY_DIV,))
        self.affine = _binary(api.BINARY_MUL, full, column, (api.BINARY_ADD,) if bias else (), slope)
        self.bias = bias
        self.fast = not any(p.impl.startswith("ref") for p in (self.normalize, self.affine))
        self.impl = "/".join(sorted({self.normalize.impl, self.affine.impl}))

    def __call__(self, x, xn, y, mean, std, s, b):
        """xn = (x - mean) / std, y = relu(xn * s + b) (y may be x), per-channel vectors given flat."""
        c, v = self.column, self.view
        x, xn, y = x.reshape(v), xn.reshape(v), y.reshape(v)
        self.normalize({api.ARG_SRC: x, api.ARG_SRC_1: mean.reshape(c), api.post_op_arg(0): std.reshape(c),
                        api.ARG_DST: xn})
        args = {api.ARG_SRC: xn, api.ARG_SRC_1: s.reshape(c), api.ARG_DST: y}
        if self.bias:
            args[api.post_op_arg(0)] = b.reshape(c)
        self.affine(args)


def chain_forward(layer, shape, bias, slope):
    """``layer``'s cached ChainForward for this shape, bias and slope, or None where oneDNN is not
    loaded, refuses it or has only reference kernels (the NumPy passes run; a refusal is logged
    once and the layer keeps to NumPy)."""
    if api.LIB is None or not getattr(layer, "use_dnnl_chain", True):
        return None
    key = (tuple(shape), bool(bias), slope)
    cached = getattr(layer, "_dnnl_chain", None)
    if cached is None or cached[0] != key:
        try:
            cached = (key, ChainForward(*key))
        except api.DnnlError as exc:
            from . import refused
            refused(layer, exc)
            layer.use_dnnl_chain = False
            return None
        layer._dnnl_chain = cached
    return cached[1] if cached[1].fast else None
