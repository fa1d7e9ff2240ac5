"""Convolution and Deconvolution (Caffe types "Convolution", "Deconvolution").

convolution_param: num_output, bias_term (true), pad / pad_h / pad_w,
kernel_size / kernel_h / kernel_w, stride / stride_h / stride_w (1), dilation (1),
group (1), weight_filler, bias_filler, axis (1: the channel axis; the axes after
it are spatial, any number of them; the axes before it are the batch).

Weights are (num_output, C/group, *kernel) for Convolution and
(C, num_output/group, *kernel) for Deconvolution (Caffe's layouts); bias is
(num_output,). N bottoms give N tops that share the weights.

Each layer has its CPU and GPU methods side by side. On the CPU, oneDNN's
convolutions run where the library loaded (firecaffe/ops/dnnl/conv.py:
Deconvolution's forward is the data gradient, its data gradient the forward);
otherwise, and with convolution_param.engine CAFFE, both paths run the GEMM
code of firecaffe/ops/conv_base.py, written once against ``xp``. The CPU path takes the
whole batch at once and keeps its columns for backward; the GPU path takes
chunks of samples whose columns fit ``COL_BUDGET`` and keeps nothing.
"""
import math

import numpy as np

from ..core import backend
from .conv_base import BATCH_MAJOR_MIN_POSITIONS, ConvolutionBase, channel_sums
from .dnnl.api import ARG_BIAS, ARG_DIFF_DST, ARG_DIFF_SRC, ARG_DST, ARG_SRC, ARG_WEIGHTS
from .dnnl.conv import weight_grad_buffers
from . import register


# Bound on |convolution output| under which the fused ReLU is used: far below float32's largest
# value (3.4e38), so that no partial sum of any kernel's order, rounding included, can overflow.
SUM_BOUND = 1e35


def _sums_bounded(bottom, weights, bias):
    """True when no output of the convolution, nor any partial sum of one, can be NaN or infinite:
    the inputs and the weights are finite and, by Cauchy-Schwarz, |sum of x * w| <= ||x|| ||w||
    (each output reads a subset of the input and of one filter), plus the largest |bias|, stays
    under SUM_BOUND. Then the fused ReLU equals the ReLU layer bit for bit; otherwise (a NaN
    there, which the fused max(s, 0) would turn into 0 where Caffe's ReLU passes it on) the
    caller runs the two layers apart. One BLAS dot per array (about 1 ms for conv1's input at
    batch 32); a NaN or inf anywhere makes a dot non-finite, and every comparison with NaN fails."""
    with np.errstate(over="ignore", invalid="ignore"):
        w = weights.reshape(-1)
        norm_w = math.sqrt(float(np.dot(w, w)))
        largest_bias = float(np.abs(bias).max()) if bias is not None and bias.size else 0.0
        for b in bottom:
            x = b.data.reshape(-1)
            if not math.sqrt(float(np.dot(x, x))) * norm_w + largest_bias < SUM_BOUND:
                return False
    return True


# Whether the weight gradient of a kernel that oneDNN computes on the plain arrays (1x1, stride 1,
# no padding: ops/dnnl/conv.py ``layout_for``) over at least BATCH_MAJOR_MIN_POSITIONS output
# positions per sample is OpenBLAS's per-sample products (NumPy's batched matmul, summed) instead
# of oneDNN's gemm convolution: 1.3-2.6x faster on SqueezeNet v1.1's and ResNet-50's 55x55 and 56x56
# 1x1 layers; over fewer positions (per-sample products of 7x7 to 28x28) oneDNN's was as fast
# or faster (docs/architecture.md). A switch for benchmarks/cpu_net.py --dnnl-wgrad.
PLAIN_WEIGHT_GRAD_ON_BLAS = True


def _dnnl_backward(layer, geo, x, dy, bias, w=None, dx=None):
    """oneDNN's gradients (firecaffe/ops/dnnl/conv.py ``backward``), the parameter ones
    added to the blobs' diffs: Caffe accumulates them, oneDNN's primitive writes them.
    On the plain layout over BATCH_MAJOR_MIN_POSITIONS or more positions per sample the weight
    (and bias) gradient is OpenBLAS's (``_blas_weight_grad``), the data gradient oneDNN's."""
    if geo.layout == "plain" and PLAIN_WEIGHT_GRAD_ON_BLAS and \
            math.prod(geo.y_shape[2:]) >= BATCH_MAJOR_MIN_POSITIONS:
        _blas_weight_grad(layer, x, dy, bias)
        if dx is not None:
            geo.backward_data()({ARG_DIFF_DST: dy, ARG_WEIGHTS: w, ARG_DIFF_SRC: dx})
        return
    dw, db = weight_grad_buffers(geo, bias)
    geo.backward(bias, x, dy, dw, db, w, dx)
    layer.blobs[0].diff[...] += dw.reshape(layer.blobs[0].shape)
    if bias:
        layer.blobs[1].diff[...] += db


def _blas_weight_grad(layer, x, dy, bias):
    """weight diff += sum over samples of dy_n x_n^T, bias diff += dy's channel sums, for a 1x1
    stride-1 kernel, where x (num, Cin, ...) and dy (num, Cout, ...) are the convolution
    direction's input and output gradient: the NumPy path's batch-major GEMMs
    (conv_base ``_gemm_backward``, which takes x as its own columns)."""
    num = x.shape[0]
    dy3 = dy.reshape(num, dy.shape[1], -1)
    layer._gemm_backward(x.reshape(num, x.shape[1], -1), True, dy3, layer.blobs[0].diff, None)
    if bias:
        layer.blobs[1].diff[...] += channel_sums(dy3)


@register("Convolution")
class Convolution(ConvolutionBase):

    def forward_cpu(self, bottom, top):
        bias = self.blobs[1].data if self.bias_term else None
        if self._on_dnnl(lambda geo: self._forward_dnnl(geo, bottom, top, bias)):
            return
        for i, (b, t) in enumerate(zip(bottom, top)):
            col, batch_major = self._columns(self._split(b.data, self.channels, self.in_spatial), i)
            self._gemm_forward(col, batch_major, t.data.reshape(self.num, self.num_output, -1), bias)

    def relu_fusable(self, slope):
        """Whether ``forward_relu`` computes the ReLU in this shape: on oneDNN, where the fused
        kernel is a direct one (``relu_pays``, ops/dnnl/conv.py); decided once per shape."""
        verdict = []
        return self._on_dnnl(lambda geo: verdict.append(geo.relu_pays(self.bias_term, slope))) and verdict[0]

    def forward_relu(self, bottom, top, slope):
        """Forward with Caffe's ReLU of ``slope`` applied to the tops as oneDNN's post-op
        (firecaffe/engine/fusion.py decides when); True where it ran so, False (nothing
        computed: the caller runs this layer and the ReLU) off oneDNN, on a device, or where
        the fused kernel would be slow."""
        if not self.use_dnnl or backend.on_device((*top, *bottom)) or not self.relu_fusable(slope):
            return False
        bias = self.blobs[1].data if self.bias_term else None
        if not _sums_bounded(bottom, self.blobs[0].data, bias):
            return False
        return self._on_dnnl(lambda geo: self._forward_dnnl(geo, bottom, top, bias, slope))

    def _forward_dnnl(self, geo, bottom, top, bias, relu=None):
        for b, t in zip(bottom, top):
            args = {ARG_SRC: b.data, ARG_WEIGHTS: self.blobs[0].data, ARG_DST: t.data}
            if bias is not None:
                args[ARG_BIAS] = bias
            geo.forward(bias is not None, relu)(args)

    def _backward_dnnl(self, geo, top, propagate_down, bottom):
        if any(propagate_down):
            geo.backward_data()          # a refusal comes before any gradient is summed
        for i, (t, b) in enumerate(zip(top, bottom)):
            _dnnl_backward(self, geo, b.data, t.diff, self.bias_term, self.blobs[0].data,
                           b.diff if propagate_down[i] else None)

    def forward_gpu(self, bottom, top):
        bias = self.blobs[1].data if self.bias_term else None
        for b, t in zip(bottom, top):
            x = self._split(b.data, self.channels, self.in_spatial)
            y3 = t.data.reshape(self.num, self.num_output, -1)
            for part in self._chunks():
                self._gemm_forward(*self._columns(x[part], batch_major=self.is_1x1), y3[part], bias)

    def backward_cpu(self, top, propagate_down, bottom):
        if self._on_dnnl(lambda geo: self._backward_dnnl(geo, top, propagate_down, bottom)):
            return
        for i, (t, b) in enumerate(zip(top, bottom)):
            dy3 = t.diff.reshape(self.num, self.num_output, -1)
            if self.bias_term:
                self.blobs[1].diff[...] += channel_sums(dy3)
            cached = self._cols.pop(i, None)
            col, batch_major = cached if cached else self._columns(
                self._split(b.data, self.channels, self.in_spatial), i)
            self._cols.pop(i, None)
            dx = self._split(b.diff, self.channels, self.in_spatial) if propagate_down[i] else None
            self._gemm_backward(col, batch_major, dy3, self.blobs[0].diff, dx)

    def backward_gpu(self, top, propagate_down, bottom):
        for i, (t, b) in enumerate(zip(top, bottom)):
            dy3 = t.diff.reshape(self.num, self.num_output, -1)
            if self.bias_term:
                self.blobs[1].diff[...] += channel_sums(dy3)
            x = self._split(b.data, self.channels, self.in_spatial)
            dx = self._split(b.diff, self.channels, self.in_spatial) if propagate_down[i] else None
            for part in self._chunks():
                col, batch_major = self._columns(x[part], batch_major=False)
                self._gemm_backward(col, batch_major, dy3[part], self.blobs[0].diff,
                                    None if dx is None else dx[part])


@register("Deconvolution")
class Deconvolution(ConvolutionBase):
    """Transposed convolution: forward is Convolution's data gradient."""
    transposed = True

    def _out_size(self, size, kernel, pad, stride, dilation):
        return stride * (size - 1) + dilation * (kernel - 1) + 1 - 2 * pad

    def forward_cpu(self, bottom, top):
        if not self._on_dnnl(lambda geo: self._forward_dnnl(geo, bottom, top)):
            self._forward(bottom, top, [slice(None)], batch_major=True)

    def _forward_dnnl(self, geo, bottom, top):
        for b, t in zip(bottom, top):
            geo.backward_data()({ARG_DIFF_DST: b.data, ARG_WEIGHTS: self.blobs[0].data, ARG_DIFF_SRC: t.data})
            if self.bias_term:
                t.data.reshape(self.num, self.num_output, -1)[...] += self.blobs[1].data[:, None]

    def _backward_dnnl(self, geo, top, propagate_down, bottom):
        data_grad = geo.forward(False) if any(propagate_down) else None    # refused before anything is summed
        for i, (t, b) in enumerate(zip(top, bottom)):
            _dnnl_backward(self, geo, t.diff, b.data, False)
            if self.bias_term:
                self.blobs[1].diff[...] += channel_sums(t.diff.reshape(self.num, self.num_output, -1))
            if propagate_down[i]:
                data_grad({ARG_SRC: t.diff, ARG_WEIGHTS: self.blobs[0].data, ARG_DST: b.diff})

    def forward_gpu(self, bottom, top):
        self._forward(bottom, top, self._chunks(), batch_major=False)

    def _forward(self, bottom, top, parts, batch_major):
        for b, t in zip(bottom, top):
            x3 = b.data.reshape(self.num, self.channels, -1)
            y = self._split(t.data, self.num_output, self.out_spatial)
            for part in parts:
                self._gemm_data(x3[part], y[part], batch_major)
            if self.bias_term:
                y.reshape(self.num, self.num_output, -1)[...] += self.blobs[1].data[:, None]

    def backward_cpu(self, top, propagate_down, bottom):
        if self._on_dnnl(lambda geo: self._backward_dnnl(geo, top, propagate_down, bottom)):
            return
        for i, (t, b) in enumerate(zip(top, bottom)):
            dy = self._split(t.diff, self.num_output, self.out_spatial)
            if self.bias_term:
                self.blobs[1].diff[...] += channel_sums(dy.reshape(self.num, self.num_output, -1))
            col, batch_major = self._columns(dy, i)
            self._cols.pop(i, None)
            x3 = b.data.reshape(self.num, self.channels, -1)
            self._gemm_backward(col, batch_major, x3, self.blobs[0].diff, None)
            if propagate_down[i]:
                self._gemm_forward(col, batch_major, b.diff.reshape(self.num, self.channels, -1), None)

    def backward_gpu(self, top, propagate_down, bottom):
        for i, (t, b) in enumerate(zip(top, bottom)):
            dy = self._split(t.diff, self.num_output, self.out_spatial)
            if self.bias_term:
                self.blobs[1].diff[...] += channel_sums(dy.reshape(self.num, self.num_output, -1))
            x3 = b.data.reshape(self.num, self.channels, -1)
            dx3 = b.diff.reshape(self.num, self.channels, -1)
            for part in self._chunks():
                # in the convolution direction dy is the input and x the output
                col, batch_major = self._columns(dy[part], batch_major=False)
                self._gemm_backward(col, batch_major, x3[part], self.blobs[0].diff, None)
                if propagate_down[i]:
                    if self.is_1x1:
                        col, batch_major = self._columns(dy[part], batch_major=True)
                    self._gemm_forward(col, batch_major, dx3[part], None)
