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

Whole-image windows (global pooling) and the argmax top stay on the NumPy path.
"""
from functools import lru_cache
from types import SimpleNamespace

import numpy as np

from . import api
from .api import call
from .prim import MemoryDesc, Primitive, PrimitiveDesc, dims


class PoolGeometry:
    def __init__(self, method, x_shape, y_shape, kernel, stride, pad):
        self.method = method
        right = [(o - 1) * s + k - i - q for o, s, k, i, q in zip(y_shape[2:], stride, kernel, x_shape[2:], pad)]
        self.exact = min(right) >= 0 and (method == "MAX" or all(r <= q for r, q in zip(right, pad)))
        if not self.exact:
            return
        alg = api.POOLING_MAX if method == "MAX" else api.POOLING_AVG_INCLUDE_PADDING
        x, y = MemoryDesc(x_shape), MemoryDesc(y_shape)
        geo = [dims(stride), dims(kernel), dims([0] * len(kernel)), dims(pad), dims(right)]
        fwd = PrimitiveDesc(lambda out: call("dnnl_pooling_forward_primitive_desc_create", out, api.ENGINE,
                                             api.FORWARD_TRAINING, alg, x.handle, y.handle, *geo, None))
        bwd = PrimitiveDesc(lambda out: call("dnnl_pooling_backward_primitive_desc_create", out, api.ENGINE,
                                             alg, x.handle, y.handle, *geo, fwd.handle, None))
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
    return geo if geo.exact else None


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
