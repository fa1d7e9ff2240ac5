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
from . import api
from .api import call
from .prim import MemoryDesc, Primitive, PrimitiveDesc, post_ops_attr, relu_post_ops


def _binary(alg, full, operand, post_ops=()):
    """A binary primitive dst = src0 alg src1, then ``post_ops``; src0 and dst of descriptor
    ``full``, src1 of ``operand``. Its ``binary_args``: the argument of each binary post-op."""
    with post_ops_attr(post_ops) as attr:
        pd = PrimitiveDesc(lambda out: call("dnnl_binary_primitive_desc_create", out, api.ENGINE, alg,
                                            full.handle, operand.handle, full.handle, attr))
    args = {api.ARG_SRC: (full, False), api.ARG_SRC_1: (operand, False), api.ARG_DST: (full, True)}
    for k, op in enumerate(post_ops):
        if op[0] == "binary":
            args[api.post_op_arg(k)] = (op[2], False)
    prim = Primitive(pd, args)
    prim.binary_args = [api.post_op_arg(k) for k, op in enumerate(post_ops) if op[0] == "binary"]
    return prim


class _Shapes:
    """An (n, c, inner) shape as oneDNN gets it (``view``) and a per-channel operand's shape
    (``column``): (n, c) and (1, c) where inner is 1, as oneDNN 3.2's jit binary post-ops broadcast
    a (1, c, 1) operand over an (n, c, 1) destination wrongly (tested: every n > 1, c > 1)."""

    def __init__(self, shape):
        self.view = tuple(shape[:2]) if shape[2] == 1 else tuple(shape)
        self.column = (1, shape[1]) + (1,) * (len(self.view) - 2)
        self.full_md, self.column_md = MemoryDesc(self.view), MemoryDesc(self.column)

    def full(self, a):
        return a.reshape(self.view)

    def col(self, a):
        return a.reshape(self.column)


class ChainForward(_Shapes):
    """The chain's two forward primitives for an (n, channels, inner) float32 shape; ``fast``
    False where oneDNN would run a reference kernel (then the NumPy passes run)."""

    def __init__(self, shape, bias, slope):
        super().__init__(shape)
        full, col = self.full_md, self.column_md
        self.normalize = _binary(api.BINARY_SUB, full, col, [("binary", api.BINARY_DIV, col)])
        self.affine = _binary(api.BINARY_MUL, full, col,
                              ([("binary", api.BINARY_ADD, col)] if bias else []) + relu_post_ops(slope))
        self.bias = bias
        prims = (self.normalize, self.affine)
        self.fast = not any(p.impl.startswith("ref") for p in prims)
        self.impl = "/".join(sorted({p.impl for p in prims}))

    def __call__(self, x, xn, y, mean, std, s, b):
        """xn = (x - mean) / std, y = relu(xn * s + b) (y may be x); per-channel values in any shape."""
        f, c = self.full, self.col
        self.normalize({api.ARG_SRC: f(x), api.ARG_SRC_1: c(mean), self.normalize.binary_args[0]: c(std),
                        api.ARG_DST: f(xn)})
        args = {api.ARG_SRC: f(xn), api.ARG_SRC_1: c(s), api.ARG_DST: f(y)}
        if self.bias:
            args[self.affine.binary_args[0]] = c(b)
        self.affine(args)


class BatchNormGradient(_Shapes):
    """BatchNorm's batch-statistics gradient, dx = (dy - (x_norm * mean(dy x_norm) + mean(dy))) / std,
    as one primitive: t = x_norm * mean_dyy + mean_dy, then t - dy, / std, * -1 + 0: the NumPy
    pass's dy - t negated twice, IEEE-exact (a - b is -(b - a); -u / s is -(u / s); -v + 0 is +0
    for v = 0, as dy - t). dx may be dy (in place). Used where the sums are finite (then no NaN,
    whose sign the negation would flip, can arise)."""

    def __init__(self, shape):
        super().__init__(shape)
        full, col = self.full_md, self.column_md
        self.prim = _binary(api.BINARY_MUL, full, col, [
            ("binary", api.BINARY_ADD, col), ("binary", api.BINARY_SUB, full), ("binary", api.BINARY_DIV, col),
            ("eltwise", api.ELTWISE_LINEAR, -1.0, 0.0)])
        self.fast = not self.prim.impl.startswith("ref")
        self.impl = self.prim.impl

    def __call__(self, dy, dx, xn, mean_dy, mean_dyy, std):
        f, c = self.full, self.col
        add, sub, div = self.prim.binary_args
        self.prim({api.ARG_SRC: f(xn), api.ARG_SRC_1: c(mean_dyy), add: c(mean_dy), sub: f(dy), div: c(std),
                   api.ARG_DST: f(dx)})


def cached(layer, attr, make, key):
    """``layer``'s cached primitive object made by ``make(*key)`` for ``key``, or None where oneDNN
    is not loaded, refuses it or has only reference kernels (the NumPy passes run; a refusal
    is logged once and the layer keeps to NumPy for that object)."""
    if api.LIB is None or getattr(layer, attr + "_refused", False):
        return None
    entry = getattr(layer, attr, None)
    if entry is None or entry[0] != key:
        try:
            entry = (key, make(*key))
        except api.DnnlError as exc:
            from . import refused
            refused(layer, exc)
            setattr(layer, attr + "_refused", True)
            return None
        setattr(layer, attr, entry)
    return entry[1] if entry[1].fast else None


def chain_forward(layer, shape, bias, slope):
    """``layer``'s ChainForward for this shape, bias and slope (``cached``)."""
    return cached(layer, "_dnnl_chain", ChainForward, (tuple(shape), bool(bias), slope))


def batch_norm_gradient(layer, shape):
    """``layer``'s BatchNormGradient for this shape (``cached``)."""
    return cached(layer, "_dnnl_bn_gradient", BatchNormGradient, (tuple(shape),))
