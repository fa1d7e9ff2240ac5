"""oneDNN's LRN in Caffe's geometry (firecaffe/ops/lrn.py).

oneDNN's formula is Caffe's: y = x (k + alpha/n' * sum of x^2 over the window)^-beta,
the window zero padded at the edges and the divisor n' fixed (n across channels,
n^2 within a channel: Caffe's AVE pooling there never clips its n x n window,
the padding being (n - 1)/2 on a stride-1 output of the input's size). Within a
channel Caffe's shift is 1, not k, so oneDNN gets k = 1 there. Each layer has
its own primitives (``_geometry``): its backward reads the forward's workspace and
the bottom the forward reordered.
"""
from types import SimpleNamespace

import numpy as np

from . import api
from .api import call
from .prim import MemoryDesc, Primitive, PrimitiveDesc


LAYOUTS = ("nChw16c", "nhwc")


class LRNGeometry:
    """Forward and backward primitives in the first of ``LAYOUTS`` where oneDNN has a
    jit kernel for both, reorders from and to the plain arrays included; ``fast`` False
    where there is none: oneDNN's reference kernels, the only ones on the plain
    arrays, were 2.5-9x slower than the NumPy path (benchmarks/lrn_dnnl.py)."""

    def __init__(self, shape, across, size, alpha, beta, k):
        alg = api.LRN_ACROSS_CHANNELS if across else api.LRN_WITHIN_CHANNEL
        plain, geo = MemoryDesc(shape), (size, alpha, beta, k)
        self.fast = False
        for layout in LAYOUTS:
            d = MemoryDesc(shape, layout)
            fwd = PrimitiveDesc(lambda out: call("dnnl_lrn_forward_primitive_desc_create", out, api.ENGINE,
                                                 api.FORWARD_TRAINING, alg, d.handle, d.handle, *geo, None))
            bwd = PrimitiveDesc(lambda out: call("dnnl_lrn_backward_primitive_desc_create", out, api.ENGINE, alg,
                                                 d.handle, d.handle, d.handle, *geo, fwd.handle, None))
            if not fwd.impl().startswith("ref") and not bwd.impl().startswith("ref"):
                self.fast = True
                break
        if not self.fast:
            return
        fwd_args = {api.ARG_SRC: (plain, False), api.ARG_DST: (plain, True)}
        bwd_args = {api.ARG_SRC: (plain, False), api.ARG_DIFF_DST: (plain, False), api.ARG_DIFF_SRC: (plain, True)}
        # the forward's workspace is the backward's (one layout, written by the forward)
        size = _workspace(fwd, fwd_args)
        self.workspace = np.empty(size, np.uint8) if size else None
        self.backward_reads_workspace = _workspace(bwd, bwd_args) > 0
        self.forward, self.backward = Primitive(fwd, fwd_args), Primitive(bwd, bwd_args)
        # the backward reads the forward's reordered bottom (Caffe leaves it as it was in between)
        self.shared_src = self.forward.reordered(api.ARG_SRC, self.backward)


def _workspace(pd, args):
    """Bytes of ``pd``'s workspace (0: none), added to ``args`` where there is one."""
    ws = pd.md(api.ARG_WORKSPACE)
    size = api.LIB.dnnl_memory_desc_get_size(ws) if ws else 0
    if size:
        args[api.ARG_WORKSPACE] = (SimpleNamespace(handle=ws), True)   # owned by pd, which the primitive keeps
    return size


def _geometry(layer, x):
    """The layer's own LRNGeometry for x's shape (not shared between layers: its
    backward reads the bottom its forward reordered), or None: the NumPy path."""
    if not layer.use_dnnl or type(x) is not np.ndarray or x.dtype != np.float32:
        return None
    key = (x.shape, layer.across, layer.size, layer.alpha, layer.beta, layer.k if layer.across else 1.0)
    if layer.dnnl_geometry is None or layer.dnnl_geometry[0] != key:
        try:
            layer.dnnl_geometry = (key, LRNGeometry(*key))
        except api.DnnlError as exc:
            from . import refused
            refused(layer, exc)
            layer.use_dnnl = False
            return None
    geo = layer.dnnl_geometry[1]
    return geo if geo.fast else None


def forward(layer, x, y):
    """LRN ``layer``'s forward of x into y on oneDNN; False where it runs the NumPy path."""
    geo = _geometry(layer, x)
    layer.dnnl_ran = geo is not None
    if geo is None:
        return False
    args = {api.ARG_SRC: x, api.ARG_DST: y}
    if geo.workspace is not None:
        args[api.ARG_WORKSPACE] = geo.workspace
    geo.forward(args)
    return True


def backward(layer, x, dy, dx):
    """The data gradient of the last forward, when that ran on oneDNN; False otherwise."""
    if not layer.dnnl_ran:
        return False
    geo = _geometry(layer, x)
    args = {api.ARG_SRC: x, api.ARG_DIFF_DST: dy, api.ARG_DIFF_SRC: dx}
    if geo.backward_reads_workspace:
        args[api.ARG_WORKSPACE] = geo.workspace
    geo.backward(args, ready=(api.ARG_SRC,) if geo.shared_src else ())
    return True
