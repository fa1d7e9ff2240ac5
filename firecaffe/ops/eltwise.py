"""Eltwise: combine two or more same-shaped bottoms element by element.

Caffe type "Eltwise", eltwise_param:
  operation         SUM (default): y = sum_i coeff_i * x_i
                    PROD: y = prod_i x_i
                    MAX:  y = max_i x_i (argmax kept for backward)
  coeff             one per bottom, SUM only (default all 1)
  stable_prod_grad  PROD backward multiplies the other bottoms (default true)
                    instead of dividing the output by x_i (fails at x_i = 0)

MAX picks its winner as Caffe does: between bottoms 0 and 1 a tie goes to 1,
from bottom 2 on a later bottom must be strictly greater to win.
"""
import numpy as np

from ..core import backend
from ..errors import PrototxtError
from ..proto import caffe_pb2
from . import _channels, _threads, register
from .base import Layer
from .neuron import relu_grad, relu_piece

_OP = caffe_pb2.EltwiseParameter


@register("Eltwise")
class Eltwise(Layer):
    min_num_bottom = 2
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.eltwise_param
        self.op = p.operation
        coeffs = list(p.coeff)
        if coeffs and len(coeffs) != len(bottom):
            self.fail(f"takes one coeff per bottom: {len(coeffs)} coeff(s) for "
                      f"{len(bottom)} bottoms", error=PrototxtError)
        if coeffs and self.op != _OP.SUM:
            self.fail("coeff is only allowed with operation SUM", error=PrototxtError)
        self.coeffs = coeffs or [1.0] * len(bottom)
        self.stable_prod_grad = bool(p.stable_prod_grad)
        self.max_idx = None

    def reshape(self, bottom, top):
        first = tuple(bottom[0].shape)
        for i, b in enumerate(bottom[1:], 1):
            if tuple(b.shape) != first:
                self.fail(f"bottom[{i}] shape {tuple(b.shape)} differs from bottom[0] shape {first}")
        top[0].reshape(first)

    def forward(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        y = top[0].data
        if self.op == _OP.PROD:
            xp.multiply(bottom[0].data, bottom[1].data, out=y)
            for b in bottom[2:]:
                y *= b.data
        elif self.op == _OP.SUM and all(c == 1 for c in self.coeffs) and \
                all(y is not b.data for b in bottom[2:]):
            xp.add(bottom[0].data, bottom[1].data, out=y)      # one pass: 0 + a + b is a + b
            for b in bottom[2:]:
                y += b.data
        elif self.op == _OP.SUM:
            y[...] = 0
            for c, b in zip(self.coeffs, bottom):
                y += b.data if c == 1 else b.data * y.dtype.type(c)
        else:
            a, b = bottom[0].data, bottom[1].data
            idx = xp.where(a > b, 0, 1).astype(xp.int32)
            xp.maximum(a, b, out=y)
            for i, blob in enumerate(bottom[2:], 2):
                wins = blob.data > y
                idx[wins] = i
                xp.maximum(y, blob.data, out=y)
            self.max_idx = idx

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff
        for i, b in enumerate(bottom):
            if not propagate_down[i]:
                continue
            if self.op == _OP.PROD:
                if self.stable_prod_grad:
                    others = [o.data for j, o in enumerate(bottom) if j != i]
                    grad = others[0] * dy
                    for o in others[1:]:
                        grad *= o
                    b.diff[...] = grad
                else:
                    b.diff[...] = top[0].data / b.data * dy
            elif self.op == _OP.SUM:
                c = self.coeffs[i]
                b.diff[...] = dy if c == 1 else dy * dy.dtype.type(c)
            else:
                b.diff[...] = dy * (self.max_idx == i)

    # --- with the in-place ReLU after it, in one pass each way (engine/fusion.py plan_eltwise) -----
    def sums_plainly(self):
        """A SUM of every coeff 1: the sum the fused pass computes."""
        return self.op == _OP.SUM and all(c == 1 for c in self.coeffs)

    def forward_chain(self, bottom, top, relu):
        """y = the sum, then the ReLU in place on it, per cache-sized piece (the layers' own
        arithmetic in their order). True where it ran; False (nothing done) otherwise."""
        y = top[0].data
        arrays = [b.data for b in bottom] + [y]
        if not self.sums_plainly() or not _channels.usable(*arrays) \
                or any(y is a for a in arrays[2:-1]):
            return False
        slope = relu.negative_slope

        def part(first, second, *rest):
            *more, out = rest
            np.add(first, second, out=out)
            for b in more:
                out += b
            relu_piece(out, out, slope, True)
        _threads.elementwise(part, *arrays, chunk=_threads.CHUNK)
        return True

    def backward_chain(self, top, bottom, relu):
        """The ReLU's gradient in place on the top diff (as the ReLU layer leaves it), then copied
        into every bottom's diff, per piece. True where it ran; False (nothing done) otherwise."""
        y, dy = top[0].data, top[0].diff
        arrays = [y, dy] + [b.diff for b in bottom]
        if not self.sums_plainly() or not _channels.usable(*arrays):
            return False
        slope = relu.negative_slope

        def part(a, g, *outs):
            relu_grad(a, g, g, slope, True)
            for out in outs:
                np.copyto(out, g)
        _threads.elementwise(part, *arrays, chunk=_threads.CHUNK)
        return True

    def flops(self, bottom, top):
        per = 2 if self.op == _OP.SUM and any(c != 1 for c in self.coeffs) else 1
        return per * top[0].count * (len(bottom) - 1)
