"""GPU paths of the layers that need kernels: CuPy arrays in, kernels from
firecaffe/kernels/*.cu, GEMMs to cuBLAS through cupy.matmul.

Each ``<layer>_forward_gpu(layer, bottom, top)`` / ``<layer>_backward_gpu(layer,
top, propagate_down, bottom)`` has the signature of the Layer method it serves
and reads the attributes the layer's ``layer_setup``/``reshape`` computed, so a
layer file wires it in as ``def forward_gpu(self, bottom, top): return
gpu_ops.conv_forward_gpu(self, bottom, top)``. ``GPU_METHODS`` lists them by
Caffe type; ``install()`` attaches them to layer classes that have no GPU method
of their own yet (tests/gpu and benchmarks/gpu_bench.py use it).

Convolution columns cover a chunk of samples at once, (C*K, m*L), so each
group is one large GEMM; chunks keep the buffer under ``COL_BUDGET`` elements.
Only 1-d and 2-d convolutions have kernels; more spatial axes build their
columns on the host (firecaffe/im2col.py, same layout) and stay correct, slowly.
"""
import numpy as np

from .im2col import col2im as host_col2im, im2col as host_im2col
from ..kernels import launch as kernel_launch

COL_BUDGET = 1 << 28          # column-buffer elements per chunk (1 GiB of float32)

_i32 = np.int32


def _cupy():
    import cupy
    return cupy


def launch(file, name, dtype, count, args):
    # One indirection, so that tests/kernels can route launches to the CPU shim.
    kernel_launch(file, name, dtype, count, args)


# --- im2col / col2im -----------------------------------------------------------
def _as_2d(spatial, kernel, pad, stride, dilation):
    """1-d geometry as 2-d with a height of one; 2-d unchanged; None otherwise."""
    if len(spatial) == 2:
        return spatial, kernel, pad, stride, dilation
    if len(spatial) == 1:
        return (1,) + tuple(spatial), (1,) + tuple(kernel), (0,) + tuple(pad), \
            (1,) + tuple(stride), (1,) + tuple(dilation)
    return None


def _geometry_args(x_shape, kernel, pad, stride, dilation, out_shape):
    flat = _as_2d(tuple(x_shape[2:]), kernel, pad, stride, dilation)
    (h, w), (kh, kw), (ph, pw), (sh, sw), (dh, dw) = flat
    oh, ow = (1,) + tuple(out_shape) if len(out_shape) == 1 else tuple(out_shape)
    return tuple(_i32(v) for v in (x_shape[0], x_shape[1], h, w, kh, kw, ph, pw, sh, sw,
                                   dh, dw, oh, ow))


def im2col_gpu(x, kernel, pad, stride, dilation, out_shape, col=None):
    """Columns (C*K, N*L) of ``x`` (N, C, *spatial): row (c, k...), column (n, o...)."""
    cp = _cupy()
    n, c = x.shape[:2]
    rows, length = c * int(np.prod(kernel)), int(np.prod(out_shape))
    if col is None or col.shape != (rows, n * length) or col.dtype != x.dtype:
        col = cp.empty((rows, n * length), dtype=x.dtype)
    if _as_2d(x.shape[2:], kernel, pad, stride, dilation) is None:
        col[...] = cp.asarray(host_im2col(cp.asnumpy(x), kernel, pad, stride, dilation,
                                                 out_shape, batch_major=False))
        return col
    x = cp.ascontiguousarray(x)
    launch("im2col", "im2col", x.dtype, c * n * length,
           (x, col) + _geometry_args(x.shape, kernel, pad, stride, dilation, out_shape))
    return col


def col2im_gpu(col, x_shape, kernel, pad, stride, dilation, out_shape, out=None):
    """Sum columns (C*K, N*L) back into ``out`` (N, C, *spatial), overwriting it."""
    cp = _cupy()
    if out is None:
        out = cp.empty(x_shape, dtype=col.dtype)
    if _as_2d(tuple(x_shape[2:]), kernel, pad, stride, dilation) is None:
        out[...] = cp.asarray(host_col2im(cp.asnumpy(col), tuple(x_shape), kernel, pad,
                                                 stride, dilation, out_shape, batch_major=False))
        return out
    launch("im2col", "col2im", col.dtype, int(np.prod(x_shape)),
           (cp.ascontiguousarray(col), out) + _geometry_args(x_shape, kernel, pad, stride,
                                                              dilation, out_shape))
    return out


# --- Convolution and Deconvolution ------------------------------------------------
def _chunks(num, col_elements_per_sample):
    step = max(1, min(num, COL_BUDGET // max(1, col_elements_per_sample)))
    return [(a, min(a + step, num)) for a in range(0, num, step)]


def _conv_columns(layer, x, big, small):
    return im2col_gpu(x, layer.kernel, layer.pad, layer.stride, layer.dilation, small)


def _conv_direction_forward(layer, x, out, bias):
    """out (num, Cout, *small) = conv(x (num, Cin, *big)) (+ bias), in chunks."""
    cp = _cupy()
    big, small, w3 = layer._geometry()
    g, length = layer.group, int(np.prod(small))
    num, cin, cout = x.shape[0], x.shape[1], out.shape[1]
    out3 = out.reshape(num, cout, length)
    for a, b in _chunks(num, cin * int(np.prod(layer.kernel)) * length):
        m = b - a
        if layer.is_1x1:      # the input is its own column buffer, sample by sample
            cp.matmul(w3, x[a:b].reshape(m, g, cin // g, length), out=out3[a:b].reshape(m, g, -1, length))
        else:
            col = _conv_columns(layer, x[a:b], big, small)
            y = cp.matmul(w3, col.reshape(g, -1, m * length))        # (g, Cout/g, m*L)
            out3[a:b] = y.reshape(cout, m, length).transpose(1, 0, 2)
    if bias is not None:
        out3 += bias[None, :, None]


def _conv_direction_backward(layer, x, dy, weight_diff, dx):
    """weight_diff += dy (x) columns of x; dx = col2im(W^T dy) when dx is given."""
    cp = _cupy()
    big, small, w3 = layer._geometry()
    g, length = layer.group, int(np.prod(small))
    num, cin, cout = x.shape[0], x.shape[1], dy.shape[1]
    dy3 = dy.reshape(num, cout, length)
    wdiff = weight_diff.reshape(w3.shape)
    for a, b in _chunks(num, cin * int(np.prod(layer.kernel)) * length):
        m = b - a
        dy_t = cp.ascontiguousarray(dy3[a:b].transpose(1, 0, 2)).reshape(g, -1, m * length)
        if layer.is_1x1:
            col = cp.ascontiguousarray(x[a:b].reshape(m, cin, length).transpose(1, 0, 2))
        else:
            col = _conv_columns(layer, x[a:b], big, small)
        col3 = col.reshape(g, -1, m * length)
        wdiff += cp.matmul(dy_t, col3.swapaxes(-1, -2))
        if dx is None:
            continue
        if layer.is_1x1:
            cp.matmul(w3.swapaxes(-1, -2), dy3[a:b].reshape(m, g, -1, length),
                      out=dx[a:b].reshape(m, g, -1, length))
        else:
            cp.matmul(w3.swapaxes(-1, -2), dy_t, out=col3)         # the columns are spent
            col2im_gpu(col, dx[a:b].shape, layer.kernel, layer.pad, layer.stride,
                       layer.dilation, small, out=dx[a:b])


def _conv_data_gradient(layer, dy, dx):
    """dx (num, Cin, *big) = col2im(W^T dy), dy (num, Cout, *small): Deconvolution's forward."""
    cp = _cupy()
    big, small, w3 = layer._geometry()
    g, length = layer.group, int(np.prod(small))
    num, cin, cout = dx.shape[0], dx.shape[1], dy.shape[1]
    dy3 = dy.reshape(num, cout, length)
    for a, b in _chunks(num, cin * int(np.prod(layer.kernel)) * length):
        m = b - a
        if layer.is_1x1:
            cp.matmul(w3.swapaxes(-1, -2), dy3[a:b].reshape(m, g, -1, length),
                      out=dx[a:b].reshape(m, g, -1, length))
            continue
        dy_t = cp.ascontiguousarray(dy3[a:b].transpose(1, 0, 2)).reshape(g, -1, m * length)
        col = cp.matmul(w3.swapaxes(-1, -2), dy_t).reshape(-1, m * length)
        col2im_gpu(col, dx[a:b].shape, layer.kernel, layer.pad, layer.stride, layer.dilation,
                   small, out=dx[a:b])


def conv_forward_gpu(layer, bottom, top):
    bias = layer.blobs[1].data if layer.bias_term else None
    for b, t in zip(bottom, top):
        _conv_direction_forward(layer, layer._split(b.data, layer.channels, layer.in_spatial),
                                layer._split(t.data, layer.num_output, layer.out_spatial), bias)


def conv_backward_gpu(layer, top, propagate_down, bottom):
    for i, (t, b) in enumerate(zip(top, bottom)):
        dy = layer._split(t.diff, layer.num_output, layer.out_spatial)
        if layer.bias_term:
            layer.blobs[1].diff[...] += dy.reshape(layer.num, layer.num_output, -1).sum(axis=(0, 2))
        dx = layer._split(b.diff, layer.channels, layer.in_spatial) if propagate_down[i] else None
        _conv_direction_backward(layer, layer._split(b.data, layer.channels, layer.in_spatial),
                                 dy, layer.blobs[0].diff, dx)


def deconv_forward_gpu(layer, bottom, top):
    for b, t in zip(bottom, top):
        y = layer._split(t.data, layer.num_output, layer.out_spatial)
        _conv_data_gradient(layer, layer._split(b.data, layer.channels, layer.in_spatial), y)
        if layer.bias_term:
            y.reshape(layer.num, layer.num_output, -1)[...] += layer.blobs[1].data[:, None]


def deconv_backward_gpu(layer, top, propagate_down, bottom):
    for i, (t, b) in enumerate(zip(top, bottom)):
        dy = layer._split(t.diff, layer.num_output, layer.out_spatial)
        if layer.bias_term:
            layer.blobs[1].diff[...] += dy.reshape(layer.num, layer.num_output, -1).sum(axis=(0, 2))
        x = layer._split(b.data, layer.channels, layer.in_spatial)
        # In the convolution direction dy is the input and x the output.
        _conv_direction_backward(layer, dy, x, layer.blobs[0].diff, None)
        if propagate_down[i]:
            _conv_direction_forward(layer, dy, layer._split(b.diff, layer.channels, layer.in_spatial),
                                    None)


# --- Pooling ---------------------------------------------------------------------
def _pool_args(layer, shape):
    n, c, h, w = shape
    return tuple(_i32(v) for v in (n * c, h, w) + tuple(layer.out_spatial) + tuple(layer.kernel)
                 + tuple(layer.stride) + tuple(layer.pad))


def pooling_forward_gpu(layer, bottom, top):
    """MAX keeps ``layer.gpu_argmax`` (int32, an index into H*W, -1 for none)."""
    cp = _cupy()
    x, y = bottom[0].data, top[0].data
    geometry = _pool_args(layer, x.shape)
    if layer.method == "AVE":
        launch("pooling", "ave_pool_forward", x.dtype, y.size, (x, y) + geometry)
        return
    layer.gpu_argmax = cp.empty(y.shape, dtype=cp.int32)
    launch("pooling", "max_pool_forward", x.dtype, y.size, (x, y, layer.gpu_argmax) + geometry)
    if len(top) > 1:
        top[1].data[...] = layer.gpu_argmax


def pooling_backward_gpu(layer, top, propagate_down, bottom):
    if not propagate_down[0]:
        return
    dx, dy = bottom[0].diff, top[0].diff
    geometry = _pool_args(layer, dx.shape)
    if layer.method == "AVE":
        launch("pooling", "ave_pool_backward", dx.dtype, dx.size, (dy, dx) + geometry)
    else:
        launch("pooling", "max_pool_backward", dx.dtype, dx.size,
               (dy, layer.gpu_argmax, dx) + geometry)


# --- LRN -------------------------------------------------------------------------
def _lrn_args(layer, x):
    t = x.dtype.type
    n, c, h, w = x.shape
    return (_i32(x.size), _i32(c), _i32(h), _i32(w), _i32(layer.size), _i32(1 if layer.across else 0),
            t(layer.factor))


def lrn_forward_gpu(layer, bottom, top):
    """Keeps ``layer.scale`` for backward, as the CPU path does."""
    cp = _cupy()
    x = bottom[0].data
    layer.scale = cp.empty_like(x)
    t = x.dtype.type
    launch("lrn", "lrn_forward", x.dtype, x.size,
           (x, layer.scale, top[0].data) + _lrn_args(layer, x) + (t(layer.shift), t(layer.beta)))


def lrn_backward_gpu(layer, top, propagate_down, bottom):
    if not propagate_down[0]:
        return
    x = bottom[0].data
    launch("lrn", "lrn_backward", x.dtype, x.size,
           (x, top[0].data, layer.scale, top[0].diff, bottom[0].diff) + _lrn_args(layer, x)
           + (x.dtype.type(layer.beta),))


# --- SoftmaxWithLoss ---------------------------------------------------------------
def softmax_loss_forward_gpu(layer, bottom, top):
    """Softmax with CuPy, then per-position loss and counts in one kernel."""
    cp = _cupy()
    from .loss import _labels, softmax
    x = bottom[0].data
    if len(top) > 1:
        layer.prob = top[1].data
    elif getattr(layer, "prob", None) is None or layer.prob.shape != x.shape:
        layer.prob = cp.empty_like(x)
    softmax(x, layer.axis, layer.prob)
    positions = layer.outer * layer.inner
    loss = cp.empty(positions, dtype=x.dtype)
    counts = cp.empty(positions, dtype=x.dtype)
    labels = cp.ascontiguousarray(bottom[1].data, dtype=x.dtype)
    ignore = layer.ignore
    launch("softmax_loss", "softmax_loss_forward", x.dtype, positions,
           (layer.prob, labels, loss, counts, _i32(layer.outer), _i32(layer.classes),
            _i32(layer.inner), _i32(ignore is not None), _i32(ignore or 0)))
    valid, bad = (int(v) for v in cp.asnumpy(cp.stack([(counts > 0).sum(), (counts < 0).sum()])))
    if bad:
        _labels(layer, bottom, layer.outer, layer.classes, layer.inner, ignore)   # raises DataError
    layer.norm = layer.normalizer(valid)
    layer.gpu_labels = labels
    top[0].data[...] = loss.sum() / layer.norm


def softmax_loss_backward_gpu(layer, top, propagate_down, bottom):
    from ..errors import PrototxtError
    if len(propagate_down) > 1 and propagate_down[1]:
        layer.fail("cannot backpropagate to label inputs", PrototxtError)
    if not propagate_down[0]:
        return
    dx = bottom[0].diff
    ignore = layer.ignore
    scale = float(top[0].diff.reshape(-1)[0]) / layer.norm
    launch("softmax_loss", "softmax_loss_backward", dx.dtype, dx.size,
           (layer.prob, layer.gpu_labels, dx, _i32(layer.outer), _i32(layer.classes),
            _i32(layer.inner), _i32(ignore is not None), _i32(ignore or 0), dx.dtype.type(scale)))


# --- Dropout -----------------------------------------------------------------------
def dropout_forward_gpu(layer, bottom, top):
    """Uniform randoms from cupy.random (seeded by backend.seed); mask in ``layer.mask``."""
    cp = _cupy()
    x = bottom[0].data
    if layer.phase != "TRAIN":
        if top[0] is not bottom[0]:
            top[0].data[...] = x
        return
    uniform = cp.random.random_sample(x.shape, dtype=x.dtype)
    layer.mask = cp.empty_like(x)
    t = x.dtype.type
    launch("dropout", "dropout_forward", x.dtype, x.size,
           (x, uniform, top[0].data, layer.mask, _i32(x.size), t(layer.ratio), t(layer.scale)))


# --- wiring ----------------------------------------------------------------------------
GPU_METHODS = {
    "Convolution": (conv_forward_gpu, conv_backward_gpu),
    "Deconvolution": (deconv_forward_gpu, deconv_backward_gpu),
    "Pooling": (pooling_forward_gpu, pooling_backward_gpu),
    "LRN": (lrn_forward_gpu, lrn_backward_gpu),
    "SoftmaxWithLoss": (softmax_loss_forward_gpu, softmax_loss_backward_gpu),
    "Dropout": (dropout_forward_gpu, None),     # backward_cpu (dy * mask) is array-generic
}


def install():
    """Attach GPU_METHODS to registered layer classes that have no GPU method of their
    own (or only the CPU one reused); returns the Caffe types it attached."""
    from . import LAYERS, Layer
    attached = []
    for type_name, (fwd, bwd) in GPU_METHODS.items():
        cls = LAYERS.get(type_name)
        if cls is None:
            continue
        for attr, fn, cpu in (("forward_gpu", fwd, "forward_cpu"), ("backward_gpu", bwd, "backward_cpu")):
            current = getattr(cls, attr)
            if fn is None or current not in (getattr(Layer, attr), getattr(cls, cpu)):
                continue
            setattr(cls, attr, _method(fn))
            attached.append(f"{type_name}.{attr}")
    return attached


def _method(fn):
    def method(self, *args):
        return fn(self, *args)
    method.__name__ = fn.__name__
    method.__doc__ = fn.__doc__
    return method
