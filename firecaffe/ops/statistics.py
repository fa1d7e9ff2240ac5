"""Layers that reduce over axes: Reduction and MVN.

Caffe types and parameters:
  Reduction  reduction_param { operation (SUM | ASUM | SUMSQ | MEAN), axis (0), coeff (1) }
             reduces every axis from ``axis`` on (the top keeps the axes before it: 0-D for
             axis 0), then multiplies by coeff.
  MVN        mvn_param { normalize_variance (true), across_channels (false), eps (1e-9) }
             per sample (and per channel unless across_channels): y = x - mean, divided by
             std + eps when normalize_variance. Input of at most 4 axes; the top is 4-D
             (N, C, H, W), missing axes being 1, as in Caffe.

MVN's backward is Caffe's: (dy - mean(dy) - y mean(dy y)) / (std + eps), the
exact gradient for eps = 0 (the eps term of the exact one is left out).
"""
from ..core import backend
from ..errors import PrototxtError
from . import register
from .base import Layer


@register("Reduction")
class Reduction(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.reduction_param
        self.op = p.ReductionOp.Name(p.operation)

    def reshape(self, bottom, top):
        try:
            self.axis = bottom[0].canonical_axis(self.param.reduction_param.axis)
        except ValueError as exc:
            self.fail(str(exc))
        self.num, self.dim = bottom[0].count_range(0, self.axis), bottom[0].count_range(self.axis)
        self.coeff = float(self.param.reduction_param.coeff)
        if self.op == "MEAN":
            self.coeff /= max(self.dim, 1)
        top[0].reshape(bottom[0].shape[:self.axis])

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.num, self.dim)
        xp = backend.xp_of(x)
        if self.op in ("SUM", "MEAN"):
            y = x.sum(axis=1)
        elif self.op == "ASUM":
            y = xp.abs(x).sum(axis=1)
        else:
            y = (x * x).sum(axis=1)
        top[0].data[...] = (y * self.coeff if self.coeff != 1 else y).reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        scale = top[0].diff.reshape(self.num, 1) * self.coeff
        dx = bottom[0].diff.reshape(self.num, self.dim)
        if self.op in ("SUM", "MEAN"):
            dx[...] = scale
        elif self.op == "ASUM":
            dx[...] = backend.xp_of(dx).sign(bottom[0].data.reshape(self.num, self.dim)) * scale
        else:
            dx[...] = bottom[0].data.reshape(self.num, self.dim) * (2 * scale)

    def flops(self, bottom, top):
        return bottom[0].count


@register("MVN")
class MVN(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.mvn_param
        self.normalize_variance, self.across_channels = bool(p.normalize_variance), bool(p.across_channels)
        self.eps = float(p.eps)

    def reshape(self, bottom, top):
        b = bottom[0]
        if b.ndim > 4:
            self.fail(f"input must have at most 4 axes (num, channels, height, width), got {b.shape}",
                      PrototxtError)
        top[0].reshape((b.num, b.channels, b.height, b.width))
        self.groups = b.num if self.across_channels else b.num * b.channels

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.groups, -1)
        xp = backend.xp_of(x)
        centred = x - x.mean(axis=1, keepdims=True)
        if self.normalize_variance:
            self.std = xp.sqrt((centred * centred).mean(axis=1, keepdims=True)) + self.eps
            centred = centred / self.std
        top[0].data[...] = centred.reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].diff.reshape(self.groups, -1)
        dx = dy - dy.mean(axis=1, keepdims=True)
        if self.normalize_variance:
            y = top[0].data.reshape(self.groups, -1)
            dx = (dx - y * (dy * y).mean(axis=1, keepdims=True)) / self.std
        bottom[0].diff[...] = dx.reshape(bottom[0].shape)

    def flops(self, bottom, top):
        return 4 * bottom[0].count
