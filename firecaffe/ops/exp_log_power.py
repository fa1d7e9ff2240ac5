"""Element-wise layers of a scaled and shifted input: Exp, Log, Power.

Caffe types and parameters:
  Exp    exp_param { base (-1 = e), scale (1), shift (0) }   y = base^(shift + scale x)
  Log    log_param { base (-1 = e), scale (1), shift (0) }   y = log_base(shift + scale x)
  Power  power_param { power (1), scale (1), shift (0) }     y = (shift + scale x)^power

All run unchanged on NumPy and CuPy. Backward passes take Caffe's forms (Exp's
uses its output), so they agree with Caffe where a formula has more than one
floating-point form.
"""
import math

from ..core import backend
from ..errors import PrototxtError
from . import register
from .activation import Elementwise


def _log_of_base(layer, base):
    """log(base), with Caffe's convention that base -1 means e."""
    if base == -1:
        return 1.0
    if not base > 0:
        layer.fail(f"base must be strictly positive (or -1 for e), got {base:g}", PrototxtError)
    value = math.log(base)
    if value == 0:
        layer.fail("base 1 has no logarithm to divide by", PrototxtError)
    return value


@register("Exp")
class Exp(Elementwise):
    def layer_setup(self, bottom, top):
        p = self.param.exp_param
        base = float(p.base)
        if base != -1 and not base > 0:
            self.fail(f"base must be strictly positive (or -1 for e), got {base:g}", PrototxtError)
        log_base = 1.0 if base == -1 else math.log(base)
        self.inner = log_base * float(p.scale)
        self.outer = math.exp(log_base * float(p.shift)) if p.shift != 0 else 1.0

    def forward(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        y = xp.exp(bottom[0].data * self.inner if self.inner != 1 else bottom[0].data)
        top[0].data[...] = y * self.outer if self.outer != 1 else y

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            g = top[0].data * top[0].diff
            bottom[0].diff[...] = g * self.inner if self.inner != 1 else g


@register("Log")
class Log(Elementwise):
    def layer_setup(self, bottom, top):
        p = self.param.log_param
        log_base = _log_of_base(self, float(p.base))
        self.scale, self.shift = float(p.scale), float(p.shift)
        self.base_scale = 1.0 / log_base
        self.backward_scale = self.scale / log_base

    def _argument(self, x):
        if self.scale != 1:
            x = x * self.scale
        return x + self.shift if self.shift != 0 else x

    def forward(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        y = xp.log(self._argument(bottom[0].data))
        top[0].data[...] = y * self.base_scale if self.base_scale != 1 else y

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            inverse = 1 / self._argument(bottom[0].data)
            if self.backward_scale != 1:
                inverse = inverse * self.backward_scale
            bottom[0].diff[...] = top[0].diff * inverse


@register("Power")
class Power(Elementwise):
    """The backward pass takes Caffe's forms: a constant for power 1, a linear
    function for power 2, power * y / x without shift, else
    power * scale * y / (shift + scale x) (so a zero base gives what Caffe gives)."""

    def layer_setup(self, bottom, top):
        p = self.param.power_param
        self.power, self.scale, self.shift = float(p.power), float(p.scale), float(p.shift)
        self.diff_scale = self.power * self.scale

    def _base(self, x):
        if self.scale != 1:
            x = x * self.scale
        return x + self.shift if self.shift != 0 else x

    def forward(self, bottom, top):
        if self.diff_scale == 0:
            top[0].data[...] = 1.0 if self.power == 0 else self.shift ** self.power
            return
        xp = backend.xp_of(bottom[0].data)
        base = self._base(bottom[0].data)
        top[0].data[...] = xp.power(base, base.dtype.type(self.power)) if self.power != 1 else base

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].diff
        if self.diff_scale == 0:
            dx[...] = 0
            return
        x, y, dy = bottom[0].data, top[0].data, top[0].diff
        if self.power == 1:
            dx[...] = dy * self.diff_scale
        elif self.power == 2:
            dx[...] = dy * (x * (self.diff_scale * self.scale) + self.diff_scale * self.shift)
        elif self.shift == 0:
            dx[...] = dy * (y / x * self.power)
        else:
            dx[...] = dy * (y / self._base(x) * self.diff_scale)
