"""oneDNN convolutions in Caffe's geometry: forward, data gradient and weight
gradient of one shape, created once (the first call that needs each) and
cached by shape, so layers of one shape share them.

Arrays are Caffe's: x (num, Cin, *in), y (num, Cout, *out), weights
(Cout, Cin/group, *kernel) (oneDNN's (group, Cout/g, Cin/g, *kernel) over the
same memory), bias (Cout,). Caffe's floor output size is oneDNN's with
right padding ``pad`` (its division truncates too); Caffe's dilation d is
oneDNN's d - 1.

Layouts (``layout_for``): a 1x1 stride-1 unpadded kernel computes on the plain
arrays (measured as fast or faster than blocked layouts plus their reorders on
SqueezeNet's 1x1 layers at batch 32, e.g. fire5/squeeze1x1 15 vs 19 ms forward +
backward); other kernels compute in the layouts oneDNN prefers (blocked, nChw16c on AVX-512),
and the reorders between those and the plain arrays run in every call and are
part of its time. ``backward`` reorders the output gradient once for both
gradients where the two primitives want the same layout. On the plain layout,
layers over 2048 or more positions per sample take only the forward and the data
gradient from here: oneDNN 3.2's gemm weight gradient measured 1.3-2.6x slower
than OpenBLAS's per-sample products on those shapes (firecaffe/ops/conv.py
``_blas_weight_grad``).
"""
from functools import lru_cache

import numpy as np

from . import api
from .api import call
from .prim import MemoryDesc, Primitive, PrimitiveDesc, dims, post_ops_attr, relu_post_ops



def layout_for(kernel, stride, pad):
    """"plain" (compute on the arrays' own nchw/oihw) or "any" (oneDNN's choice, with reorders)."""
    return "plain" if set(kernel) == {1} and set(stride) == {1} and set(pad) == {0} else "any"


class ConvGeometry:
    def __init__(self, num, cin, cout, group, in_spatial, out_spatial, kernel, stride, pad, dilation,
                 layout=None):
        self.group = group
        self.x_shape = (num, cin) + tuple(in_spatial)
        self.y_shape = (num, cout) + tuple(out_spatial)
        w = (cout, cin // group) + tuple(kernel)
        self.w_shape = w if group == 1 else (group, cout // group) + w[1:]
        self.b_shape = (cout,)
        self.stride, self.pad = dims(stride), dims(pad)
        self.dilates = dims([d - 1 for d in dilation])
        self.layout = layout = layout or layout_for(kernel, stride, pad)
        plain = {k: MemoryDesc(s) for k, s in
                 (("x", self.x_shape), ("y", self.y_shape), ("w", self.w_shape), ("b", self.b_shape))}
        self.plain = plain
        self.compute = plain if layout == "plain" else {k: MemoryDesc(s, "any") for k, s in
                                                        (("x", self.x_shape), ("y", self.y_shape),
                                                         ("w", self.w_shape))}
        self.compute["b"] = plain["b"]
        self._fwd_pd = {}
        self._prims = {}
        self._relu_pays = {}

    def fwd_pd(self, bias, relu=None):
        """The forward primitive descriptor; with ``relu`` (a negative slope), ReLU as an
        eltwise post-op: y = relu(conv(x, w) (+ b)) in one pass (``relu_attr``)."""
        key = (bias, relu)
        if key not in self._fwd_pd:
            c = self.compute
            with relu_attr(relu) as attr:
                self._fwd_pd[key] = PrimitiveDesc(lambda out: call(
                    "dnnl_convolution_forward_primitive_desc_create", out, api.ENGINE, api.FORWARD_TRAINING,
                    api.CONVOLUTION_DIRECT, c["x"].handle, c["w"].handle, c["b"].handle if bias else None,
                    c["y"].handle, self.stride, self.dilates, self.pad, self.pad, attr))
        return self._fwd_pd[key]

    def relu_pays(self, bias, slope):
        """Whether the forward with ReLU as a post-op gets a direct (jit) kernel: oneDNN 3.2's gemm
        convolutions (1x1 layers on the plain arrays, small ones) apply post-ops in a slow extra
        pass, measured 1.5-12x their unfused forward on SqueezeNet v1.1's 1x1 layers, far more than
        the ReLU layer costs; the direct kernels' fused forward takes their unfused time."""
        key = (bias, slope)
        if key not in self._relu_pays:
            try:
                self._relu_pays[key] = "gemm" not in self.fwd_pd(bias, slope).impl()
            except api.DnnlError:        # refused with the post-op: the layer runs unfused
                self._relu_pays[key] = False
        return self._relu_pays[key]

    def forward(self, bias, relu=None):
        """y = conv(x, w) (+ b), then ReLU of slope ``relu`` where given: call with
        {ARG_SRC: x, ARG_WEIGHTS: w, ARG_BIAS: b, ARG_DST: y}."""
        key = ("fwd", bias, relu)
        if key not in self._prims:
            p = self.plain
            args = {api.ARG_SRC: (p["x"], False), api.ARG_WEIGHTS: (p["w"], False), api.ARG_DST: (p["y"], True)}
            if bias:
                args[api.ARG_BIAS] = (p["b"], False)
            self._prims[key] = Primitive(self.fwd_pd(bias, relu), args)
        return self._prims[key]

    def backward_data(self):
        """dx = conv^T(dy, w): {ARG_DIFF_DST: dy, ARG_WEIGHTS: w, ARG_DIFF_SRC: dx}."""
        if "bwd_data" not in self._prims:
            c, p, hint = self.compute, self.plain, self.fwd_pd(False)
            pd = PrimitiveDesc(lambda out: call(
                "dnnl_convolution_backward_data_primitive_desc_create", out, api.ENGINE,
                api.CONVOLUTION_DIRECT, c["x"].handle, c["w"].handle, c["y"].handle, self.stride, self.dilates,
                self.pad, self.pad, hint.handle, None))
            self._prims["bwd_data"] = Primitive(pd, {api.ARG_DIFF_DST: (p["y"], False),
                                                     api.ARG_WEIGHTS: (p["w"], False),
                                                     api.ARG_DIFF_SRC: (p["x"], True)})
        return self._prims["bwd_data"]

    def backward_weights(self, bias):
        """dw (and db) from x and dy: {ARG_SRC: x, ARG_DIFF_DST: dy, ARG_DIFF_WEIGHTS: dw, ARG_DIFF_BIAS: db}."""
        key = ("bwd_weights", bias)
        if key not in self._prims:
            c, p, hint = self.compute, self.plain, self.fwd_pd(bias)
            pd = PrimitiveDesc(lambda out: call(
                "dnnl_convolution_backward_weights_primitive_desc_create", out, api.ENGINE,
                api.CONVOLUTION_DIRECT, c["x"].handle, c["w"].handle, c["b"].handle if bias else None,
                c["y"].handle, self.stride, self.dilates, self.pad, self.pad, hint.handle, None))
            args = {api.ARG_SRC: (p["x"], False), api.ARG_DIFF_DST: (p["y"], False),
                    api.ARG_DIFF_WEIGHTS: (p["w"], True)}
            if bias:
                args[api.ARG_DIFF_BIAS] = (p["b"], True)
            self._prims[key] = Primitive(pd, args)
        return self._prims[key]

    def backward(self, bias, x, dy, dw, db, w=None, dx=None):
        """Weight (and bias) gradient from x and dy into dw (db), then, with ``dx``, the
        data gradient from dy and w; dy is reordered once where both want one layout."""
        weights_grad = self.backward_weights(bias)
        data_grad = self.backward_data() if dx is not None else None
        args = {api.ARG_SRC: x, api.ARG_DIFF_DST: dy, api.ARG_DIFF_WEIGHTS: dw}
        if bias:
            args[api.ARG_DIFF_BIAS] = db
        weights_grad(args)
        if data_grad is not None:
            reordered = weights_grad.reordered(api.ARG_DIFF_DST, data_grad)
            data_grad({api.ARG_DIFF_DST: dy, api.ARG_WEIGHTS: w, api.ARG_DIFF_SRC: dx},
                      ready=(api.ARG_DIFF_DST,) if reordered else ())

    def impl(self):
        """The implementations of the primitives made so far, e.g. 'brg:avx2'."""
        names = sorted({p.impl for p in self._prims.values()})
        return "/".join(names) if names else "not created"


def relu_attr(slope):
    """Primitive attributes with the ReLU of ``slope`` as post-ops (prim.relu_post_ops); None
    without a slope. A context manager."""
    return post_ops_attr(relu_post_ops(slope))


@lru_cache(maxsize=256)
def geometry(*key):
    """The cached ConvGeometry of ``key`` (ConvGeometry's arguments, as tuples)."""
    return ConvGeometry(*key)


def weight_grad_buffers(geo, bias):
    """Scratch arrays for the weight (and bias) gradient, which Caffe accumulates
    and oneDNN overwrites: kept on the geometry, reused between calls."""
    bufs = geo.__dict__.setdefault("_grad_buffers", {})
    if bias not in bufs:
        bufs[bias] = (np.empty(geo.w_shape, np.float32), np.empty(geo.b_shape, np.float32) if bias else None)
    return bufs[bias]
