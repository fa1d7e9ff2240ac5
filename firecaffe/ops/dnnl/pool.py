"""oneDNN pooling in Caffe's geometry (firecaffe/ops/pooling.py), on the plain
NCHW arrays, where it gives Caffe's numbers exactly:

- Caffe's output size (rounded up, last window starting inside the image or
  its left/top padding) is oneDNN's with right padding
  ``(out - 1) * stride + kernel - size - pad`` (never negative when rounding up);
- MAX: padding never wins on either side; oneDNN's workspace keeps the offset of
  the maximum in its window, and backward routes the gradient there (the first
  maximum in scan order, as Caffe, is pinned by the tests, ties included);
- AVE: Caffe divides by the window clipped to the padded image. That is
  oneDNN's divisor (the whole kernel, padding included) only where no window
  hangs over the far padding (right padding <= pad); elsewhere the NumPy path.

Whole-image windows (global pooling) and the argmax top stay on the NumPy path, as does
a geometry for which oneDNN has no jit kernel in any layout (``PoolGeometry``).
"""
from functools import lru_cache
from types import SimpleNamespace

import numpy as np

from . import api
from .api import call
from .prim import MemoryDesc, Primitive, PrimitiveDesc, dims


LAYOUTS = ("plain", "nChw8c", "nChw16c")


class PoolGeometry:
    """Forward and backward primitives for one pooling geometry, in the first of ``LAYOUTS`` where
    oneDNN has a jit kernel for both, reorders from and to the plain arrays included (on AVX2,
    oneDNN 3.2 pools the plain arrays with its simple_nchw kernel: SqueezeNet's pool1 forward took
    289 ms there, 74 ms on the NumPy path, 26 ms blocked, nChw8c, reorders included). ``exact``
    False where oneDNN cannot give Caffe's numbers, ``impl`` None where no layout has a jit kernel
    (then the NumPy path runs)."""

    def __init__(self, method, x_shape, y_shape, kernel, stride, pad):
        self.method, self.impl = method, None
        right = [(o - 1) * s + k - i - q for o, s, k, i, q in zip(y_shape[2:], stride, kernel, x_shape[2:], pad)]
        self.exact = min(right) >= 0 and (method == "MAX" or all(r <= q for r, q in zip(right, pad)))
        if not self.exact:
            return
        alg = api.POOLING_MAX if method == "MAX" else api.POOLING_AVG_INCLUDE_PADDING
        x, y = MemoryDesc(x_shape), MemoryDesc(y_shape)
        geo = [dims(stride), dims(kernel), dims([0] * len(kernel)), dims(pad), dims(right)]
        refusal, made = None, False
        for layout in LAYOUTS:
            xl, yl = (x, y) if layout == "plain" else (MemoryDesc(x_shape, layout), MemoryDesc(y_shape, "any"))
            try:
                fwd = PrimitiveDesc(lambda out: call("dnnl_pooling_forward_primitive_desc_create", out, api.ENGINE,
                                                     api.FORWARD_TRAINING, alg, xl.handle, yl.handle, *geo, None))
                bwd = PrimitiveDesc(lambda out: call("dnnl_pooling_backward_primitive_desc_create", out,
                                                     api.ENGINE, alg, xl.handle, yl.handle, *geo, fwd.handle, None))
            except api.DnnlError as exc:       # this layout refused: the next may do
                refusal = refusal or exc
                continue
            made = True
            if fwd.impl().startswith("jit") and bwd.impl().startswith("jit"):
                self.impl, self.layout = fwd.impl(), layout
                break
        if self.impl is None:
            if not made and refusal is not None:
                raise refusal                   # every layout refused: the layer says so once
            return
        fwd_args = {api.ARG_SRC: (x, False), api.ARG_DST: (y, True)}
        bwd_args = {api.ARG_DIFF_DST: (y, False), api.ARG_DIFF_SRC: (x, True)}
        self.workspace_bytes = 0
        if method == "MAX":
            ws = SimpleNamespace(handle=fwd.md(api.ARG_WORKSPACE))     # owned by fwd, kept by the primitive
            self.workspace_bytes = api.LIB.dnnl_memory_desc_get_size(ws.handle)
            fwd_args[api.ARG_WORKSPACE] = bwd_args[api.ARG_WORKSPACE] = (ws, True)
        self.forward, self.backward = Primitive(fwd, fwd_args), Primitive(bwd, bwd_args)


@lru_cache(maxsize=256)
def geometry(*key):
    return PoolGeometry(*key)


def _geometry(layer, x, y):
    if not layer.use_dnnl or layer.n_top > 1 or layer._is_whole_window(x.shape) or x.dtype != np.float32:
        return None
    try:
        geo = geometry(layer.method, x.shape, y.shape, tuple(layer.kernel), layer.stride, layer.pad)
    except api.DnnlError as exc:
        from . import refused
        refused(layer, exc)
        layer.use_dnnl = False
        return None
    return geo if geo.exact and geo.impl else None


def forward(layer, x, y):
    """Pooling ``layer``'s forward of x into y on oneDNN; False where it runs the NumPy path."""
    geo = _geometry(layer, x, y)
    layer.dnnl_ran = geo is not None
    if geo is None:
        return False
    args = {api.ARG_SRC: x, api.ARG_DST: y}
    if geo.workspace_bytes:
        if layer.workspace is None or layer.workspace.nbytes != geo.workspace_bytes:
            layer.workspace = np.empty(geo.workspace_bytes, np.uint8)
        args[api.ARG_WORKSPACE] = layer.workspace
    geo.forward(args)
    return True


def backward(layer, dy, dx):
    """The gradient of the last forward, when that ran on oneDNN; False otherwise."""
    if not layer.dnnl_ran:
        return False
    geo = geometry(layer.method, dx.shape, dy.shape, tuple(layer.kernel), layer.stride, layer.pad)
    args = {api.ARG_DIFF_DST: dy, api.ARG_DIFF_SRC: dx}
    if geo.workspace_bytes:
        args[api.ARG_WORKSPACE] = layer.workspace
    geo.backward(args)
    return True
