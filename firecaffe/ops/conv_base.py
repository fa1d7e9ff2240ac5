"""The parts Convolution and Deconvolution share (firecaffe/ops/conv.py): their
convolution_param, shapes, and the columns and GEMMs of both paths.

The GEMM code is written once against ``xp`` (NumPy or CuPy); im2col/col2im
(firecaffe/ops/im2col.py) pick host code or the CUDA kernel by the array's
module. 1x1 stride-1 unpadded kernels skip im2col.
CPU: the whole batch at once. Large outputs use per-sample columns (N, C*K, L),
so a batched matmul writes NCHW directly; small outputs use (C*K, N*L), one GEMM
over the whole batch plus one transposing copy of the small result. The columns
built in forward are kept (and their buffer reused) for the weight gradient.
oneDNN (firecaffe/ops/dnnl/) is the CPU engine where it loaded and the layer
allows it (float32, convolution_param.engine not CAFFE);
``_on_dnnl`` runs a oneDNN step and turns the layer to the NumPy path, for good
and with one log line, when oneDNN refuses its shape.
GPU: (C*K, m*L) columns for chunks of m samples, each group one large GEMM
(cuBLAS), chunks keeping the buffer under ``COL_BUDGET`` elements; columns are
not kept between forward and backward (they would hold GPU memory per layer).
"""
import numpy as np

from ..core import backend
from .im2col import col2im, im2col, out_size
from .base import Layer
from . import dnnl
from .dnnl.conv import geometry as dnnl_geometry

# Output positions per sample from which per-sample (batched) GEMMs beat one
# whole-batch GEMM plus a transpose (measured with benchmarks/conv_cpu.py).
BATCH_MAJOR_MIN_POSITIONS = 2048
# Batch-major weight gradients: above this size (bytes) the per-sample products
# (num, Cout, Cin*K) are summed one by one instead of stacked and reduced (for
# SqueezeNet's conv10 the stack is 65 MB and costs ~1.5x the GEMMs themselves).
STACKED_WEIGHT_GRAD_MAX_BYTES = 8 << 20
COL_BUDGET = 1 << 28          # GPU column-buffer elements per chunk (1 GiB of float32)


def channel_sums(a3):
    """Sum of a (num, C, L) array over num and L: a matrix-vector product with ones,
    about 3x faster than ``a3.sum(axis=(0, 2))`` on large blobs (bias gradients)."""
    xp = backend.xp_of(a3)
    return xp.matmul(a3, xp.ones(a3.shape[-1], dtype=a3.dtype)).sum(axis=0)


def window_geometry(layer, p, bottom, axis):
    """(kernel, stride, pad, dilation), one value per spatial axis after ``axis``, from a
    ConvolutionParameter ``p``, each checked (Convolution, Deconvolution, Im2col)."""
    n_spatial = bottom.ndim - axis - 1
    if n_spatial < 1:
        layer.fail(f"input {bottom.shape} has no spatial axes after channel axis {axis}")
    kernel = _per_axis(layer, p, "kernel_size", n_spatial, None)
    stride = _per_axis(layer, p, "stride", n_spatial, 1)
    pad = _per_axis(layer, p, "pad", n_spatial, 0)
    dilation = _per_axis(layer, p, "dilation", n_spatial, 1)
    for what, values, low in (("kernel size", kernel, 1), ("stride", stride, 1),
                              ("dilation", dilation, 1), ("pad", pad, 0)):
        if min(values) < low:
            layer.fail(f"{what} must be >= {low}, got {values}")
    return kernel, stride, pad, dilation


def _per_axis(layer, p, name, n_spatial, default):
    """One value per spatial axis from ``name`` (repeated) or ``name_h``/``name_w``."""
    values = list(getattr(p, name))
    base = name[:-5] if name == "kernel_size" else name
    hw = [f"{base}_h", f"{base}_w"]
    if name != "dilation" and any(p.HasField(f) for f in hw):
        if n_spatial != 2:
            layer.fail(f"{hw[0]}/{hw[1]} can only be used with 2 spatial axes, input has {n_spatial}")
        if values:
            layer.fail(f"give either {name} or {hw[0]}/{hw[1]}, not both")
        if name != "pad" and not all(p.HasField(f) for f in hw):
            layer.fail(f"{hw[0]} and {hw[1]} must be given together")
        return tuple(int(getattr(p, f)) for f in hw)
    if not values:
        if default is None:
            layer.fail("convolution_param needs kernel_size (or kernel_h and kernel_w)")
        return (default,) * n_spatial
    if len(values) not in (1, n_spatial):
        layer.fail(f"{name} has {len(values)} values; give 1 or one per spatial axis ({n_spatial})")
    return tuple(int(v) for v in (values * n_spatial if len(values) == 1 else values))


class ConvolutionBase(Layer):
    min_num_bottom = 1
    min_num_top = 1
    transposed = False   # Deconvolution: the conv direction runs from top to bottom

    def layer_setup(self, bottom, top):
        p = self.param.convolution_param
        if len(bottom) != len(top):
            self.fail(f"needs as many top blobs as bottom blobs, got {len(bottom)} bottom, {len(top)} top")
        try:
            self.axis = bottom[0].canonical_axis(p.axis)
        except ValueError as exc:
            self.fail(str(exc))
        self.kernel, self.stride, self.pad, self.dilation = window_geometry(self, p, bottom[0], self.axis)
        self.is_1x1 = all(k == 1 for k in self.kernel) and all(s == 1 for s in self.stride) \
            and all(q == 0 for q in self.pad)
        self.channels = bottom[0].shape[self.axis]
        self.num_output = int(p.num_output)
        self.group = int(p.group)
        if self.num_output < 1:
            self.fail("convolution_param.num_output must be given and > 0")
        if self.group < 1 or self.channels % self.group or self.num_output % self.group:
            self.fail(f"group {self.group} must divide both the input channels ({self.channels}, "
                      f"input {bottom[0].shape}) and num_output ({self.num_output})")
        conv_out, conv_in = ((self.channels, self.num_output) if self.transposed
                             else (self.num_output, self.channels))
        self.make_blob((conv_out, conv_in // self.group) + self.kernel,
                       p.weight_filler if p.HasField("weight_filler") else None)
        self.bias_term = p.bias_term
        if self.bias_term:
            self.make_blob((self.num_output,), p.bias_filler if p.HasField("bias_filler") else None)
        self._cols = {}       # slot -> (columns, batch_major) of the last forward, for backward
        self.use_dnnl = dnnl.AVAILABLE and p.engine != p.CAFFE and self.dtype == np.float32
        self._buffers = {}    # slot -> column buffer, reused between iterations

    # --- shapes --------------------------------------------------------------
    def reshape(self, bottom, top):
        shape = bottom[0].shape
        for i, b in enumerate(bottom):
            if b.shape != shape:
                self.fail(f"all bottoms must have one shape: bottom[0] {shape}, bottom[{i}] {b.shape}")
        if len(shape) != self.axis + 1 + len(self.kernel) or shape[self.axis] != self.channels:
            self.fail(f"input {shape} does not fit the layer set up for {self.channels} channels "
                      f"and {len(self.kernel)} spatial axes")
        self.num = int(np.prod(shape[:self.axis], dtype=np.int64))
        self.in_spatial = shape[self.axis + 1:]
        self.out_spatial = tuple(self._out_size(*a) for a in zip(
            self.in_spatial, self.kernel, self.pad, self.stride, self.dilation))
        if min(self.out_spatial) < 1:
            self.fail(f"output would be empty: input {shape}, kernel {self.kernel}, pad {self.pad}, "
                      f"stride {self.stride}, dilation {self.dilation} give {self.out_spatial}")
        for t in top:
            t.reshape(shape[:self.axis] + (self.num_output,) + self.out_spatial)

    def _out_size(self, size, kernel, pad, stride, dilation):
        return out_size(size, kernel, pad, stride, dilation)

    @property
    def engine_name(self):
        """The CPU engine of this layer, as `firecaffe time` prints it. 1x1 stride-1 layers
        over many positions ran the NumPy path (one batched matmul) until whole nets on the
        shared 2-core machine measured faster with them on oneDNN too (docs/performance.md)."""
        return dnnl.VERSION if self.use_dnnl else "NumPy"

    def _on_dnnl(self, step):
        """Run ``step(geometry)`` on oneDNN, the geometry in the convolution direction;
        False (the caller runs its NumPy path) where the layer does not use oneDNN or
        oneDNN refuses the shape, which turns the layer to NumPy for good."""
        if not self.use_dnnl:
            return False
        big, small = ((self.out_spatial, self.in_spatial) if self.transposed
                      else (self.in_spatial, self.out_spatial))
        cin, cout = (self.num_output, self.channels) if self.transposed else (self.channels, self.num_output)
        try:
            step(dnnl_geometry(self.num, cin, cout, self.group, big, small, self.kernel, self.stride,
                               self.pad, self.dilation))
            return True
        except dnnl.DnnlError as exc:
            dnnl.refused(self, exc)
            self.use_dnnl = False
            return False

    # --- the three GEMMs, in the convolution direction ------------------------
    # x: (num, Cin, *big) -> y: (num, Cout, *small); W3: (group, Cout/g, Cin/g*K)
    def _geometry(self):
        big, small = ((self.out_spatial, self.in_spatial) if self.transposed
                      else (self.in_spatial, self.out_spatial))
        w = self.blobs[0]
        return big, small, w.data.reshape(self.group, w.shape[0] // self.group, -1)

    def _columns(self, x, slot=None, batch_major=None):
        """Columns of x (num, Cin, *big), and whether they are batch-major. With a
        ``slot`` (the CPU path) the layout follows the output size and the columns
        are kept for backward, their buffer for the next iteration; without one
        (the GPU path) the layout is ``batch_major`` and nothing is kept."""
        big, small, _ = self._geometry()
        length = int(np.prod(small))
        if self.is_1x1 and (batch_major or slot is not None):
            return x.reshape(x.shape[0], x.shape[1], length), True
        if self.is_1x1:
            xp = backend.xp_of(x)
            return xp.ascontiguousarray(x.reshape(x.shape[0], x.shape[1], length).transpose(1, 0, 2)), False
        if slot is None:
            return im2col(x, self.kernel, self.pad, self.stride, self.dilation, small, False), False
        batch_major = length >= BATCH_MAJOR_MIN_POSITIONS
        # the buffer stays on the layer between iterations: a fresh 50 MB array each
        # time costs about as much as the copy into it (the kernel zeroes new pages)
        col = im2col(x, self.kernel, self.pad, self.stride, self.dilation, small,
                     batch_major, self._buffers.get(slot))
        self._buffers[slot] = col
        self._cols[slot] = (col, batch_major)
        return col, batch_major

    def _chunks(self):
        """GPU: sample ranges whose (C*K, m*L) columns stay under COL_BUDGET elements."""
        big, small, w3 = self._geometry()
        per_sample = max(1, w3.shape[0] * w3.shape[2] * int(np.prod(small)))
        step = max(1, min(self.num, COL_BUDGET // per_sample))
        return [slice(a, min(a + step, self.num)) for a in range(0, self.num, step)]

    # --- the three GEMMs, written once against xp ---------------------------------------
    def _gemm_forward(self, col, batch_major, out3, bias):
        """out3 (num, Cout, L) = W * col (+ bias)."""
        xp = backend.xp_of(col)
        g, (num, cout, length) = self.group, out3.shape
        w3 = self._geometry()[2]
        if batch_major:
            xp.matmul(w3, col.reshape(num, g, -1, length), out=out3.reshape(num, g, -1, length))
            if bias is not None:
                out3 += bias[:, None]
            return
        y = xp.matmul(w3, col.reshape(g, -1, num * length)).reshape(cout, num, length)
        if bias is not None:
            xp.add(y.transpose(1, 0, 2), bias[:, None], out=out3)
        else:
            out3[...] = y.transpose(1, 0, 2)

    def _gemm_backward(self, col, batch_major, dy3, weight_diff, dx):
        """weight_diff += dy * col^T; dx (num, Cin, *big) = col2im(W^T * dy) when given
        (which spends the columns)."""
        xp = backend.xp_of(col)
        g, (num, _, length) = self.group, dy3.shape
        big, small, w3 = self._geometry()
        wdiff = weight_diff.reshape(w3.shape)
        if batch_major:
            dy4 = dy3.reshape(num, g, -1, length)
            col4 = col.reshape(num, g, -1, length)
            if num * wdiff.nbytes <= STACKED_WEIGHT_GRAD_MAX_BYTES:
                wdiff += xp.matmul(dy4, col4.swapaxes(-1, -2)).sum(axis=0)
            else:
                acc = xp.matmul(dy4[0], col4[0].swapaxes(-1, -2))
                tmp = xp.empty_like(acc)
                for n in range(1, num):
                    acc += xp.matmul(dy4[n], col4[n].swapaxes(-1, -2), out=tmp)
                wdiff += acc
        else:
            dy4 = xp.ascontiguousarray(dy3.transpose(1, 0, 2)).reshape(g, -1, num * length)
            col4 = col.reshape(g, -1, num * length)
            wdiff += xp.matmul(dy4, col4.swapaxes(-1, -2))
        if dx is None:
            return
        if self.is_1x1:
            xp.matmul(w3.swapaxes(-1, -2), dy3.reshape(num, g, -1, length),
                      out=dx.reshape(num, g, -1, length))
            return
        xp.matmul(w3.swapaxes(-1, -2), dy4, out=col4)    # the columns are spent: reuse them
        col2im(col, dx.shape, self.kernel, self.pad, self.stride, self.dilation, small,
               batch_major, out=dx)

    def _gemm_data(self, dy3, dx, batch_major):
        """dx (num, Cin, *big) = col2im(W^T dy) from dy3 (num, Cout, L) alone:
        Deconvolution's forward."""
        xp = backend.xp_of(dy3)
        big, small, w3 = self._geometry()
        g, (num, _, length) = self.group, dy3.shape
        if self.is_1x1:
            xp.matmul(w3.swapaxes(-1, -2), dy3.reshape(num, g, -1, length),
                      out=dx.reshape(num, g, -1, length))
            return
        if batch_major:
            col = xp.matmul(w3.swapaxes(-1, -2), dy3.reshape(num, g, -1, length))     # (num, g, Cin/g*K, L)
        else:
            dy4 = xp.ascontiguousarray(dy3.transpose(1, 0, 2)).reshape(g, -1, num * length)
            col = xp.matmul(w3.swapaxes(-1, -2), dy4).reshape(-1, num * length)
        col2im(col, dx.shape, self.kernel, self.pad, self.stride, self.dilation, small,
               batch_major, out=dx)

    def _split(self, blob, channels, spatial):
        return blob.reshape(self.num, channels, *spatial)

    def flops(self, bottom, top):
        w = self.blobs[0]
        small = self.in_spatial if self.transposed else self.out_spatial
        macs = self.num * int(np.prod(small)) * w.count
        return len(bottom) * (2 * macs + (self.num * top[0].count_range(self.axis) if self.bias_term else 0))


