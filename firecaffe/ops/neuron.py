"""Element-wise neuron layers: ReLU, Sigmoid, TanH, Dropout.

Caffe types and parameters:
  ReLU     relu_param { negative_slope (0) }     y = x > 0 ? x : negative_slope * x
  Sigmoid  (none)                                y = 1 / (1 + exp(-x))
  TanH     (none)                                y = tanh(x)
  Dropout  dropout_param { dropout_ratio (0.5) } TRAIN: y = x * mask / (1 - ratio),
                                                 mask ~ Bernoulli(1 - ratio); TEST: y = x

All four may run in place (top blob is the bottom blob). Their backward passes
read only what survives an in-place forward: ReLU the sign of its input (the
output has the same sign for negative_slope >= 0, as in Caffe), Sigmoid and
TanH their output, Dropout its stored mask.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..core import backend
from . import register
from .base import Layer

# Large element-wise NumPy work is memory bound and single-threaded in NumPy.
# It can be shared out over threads (NumPy releases the GIL in its loops):
# FIRECAFFE_ELTWISE_THREADS=N. The default is 1: alone, 2 threads nearly halve
# a 100 MB ReLU on the 2-core benchmark machine, but inside a net the layer
# follows a convolution whose OpenBLAS threads still spin on the other core,
# and there (and under load) 2 threads measured no faster or slightly slower.
# Where a pass needs a scratch mask it is cut into pieces whose mask stays in cache.
_THREADS = max(1, min(int(os.environ.get("FIRECAFFE_ELTWISE_THREADS", "1") or 1), 64))
_CHUNK = 1 << 17                 # elements per piece with a scratch mask: 512 KiB of float32
_MIN_PARALLEL = 1 << 18          # elements below which one thread does it all
_executor = None                 # (pid, ThreadPoolExecutor)


def run_parts(fn, n, min_n=None, grain=1):
    """Call ``fn(lo, hi)`` over disjoint ranges covering ``range(n)``, one per
    thread (range starts on multiples of ``grain``), or once for the whole
    range when ``n < min_n`` (default ``_MIN_PARALLEL``) or there is one
    thread. ``fn`` must be safe to run concurrently on disjoint ranges."""
    global _executor
    if min_n is None:
        min_n = _MIN_PARALLEL
    if _THREADS == 1 or n < min_n or n <= grain:
        fn(0, n)
        return
    if _executor is None or _executor[0] != os.getpid():     # none yet, or forked since
        _executor = (os.getpid(), ThreadPoolExecutor(_THREADS, thread_name_prefix="firecaffe-eltwise"))
    step = -(-n // (_THREADS * grain)) * grain
    futures = [_executor[1].submit(fn, lo, min(lo + step, n)) for lo in range(0, n, step)]
    for f in futures:
        f.result()


def elementwise(fn, *arrays, chunk=None):
    """Call ``fn(*parts)`` over matching parts of the flattened, C-contiguous
    NumPy ``arrays`` (all of one size), split between threads when the arrays
    are large, and within a thread into pieces of ``chunk`` elements when
    given (so that a scratch array ``fn`` makes per part stays in cache).
    ``fn`` must treat each part on its own (element-wise), so the parts may
    run in any order, concurrently."""
    flat = [a.reshape(-1) for a in arrays]
    n = flat[0].size
    chunk = chunk or n or 1

    def run(lo, hi):
        for s in range(lo, hi, chunk):
            e = min(s + chunk, hi)
            fn(*[a[s:e] for a in flat])

    run_parts(run, n, grain=min(chunk, 1 << 12))


_local = threading.local()


def _mask(n):
    """A reused per-thread boolean scratch array of ``n`` elements (``n`` at
    most ``_CHUNK`` in the chunked passes, so it stays small and in cache)."""
    buf = getattr(_local, "mask", None)
    if buf is None or buf.size < n:
        buf = _local.mask = np.empty(max(n, _CHUNK), dtype=bool)
    return buf[:n]


def _fast(*arrays):
    """True when the arrays are C-contiguous NumPy arrays (the threaded path)."""
    return all(isinstance(a, np.ndarray) and a.flags.c_contiguous for a in arrays)


class _Neuron(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def reshape(self, bottom, top):
        top[0].reshape_like(bottom[0])


@register("ReLU")
class ReLU(_Neuron):
    """In place or not, with no full-size temporaries. Backward reads the sign
    of ``bottom[0].data`` (the output when in place): dx = dy * (x > 0), or
    dy where x > 0 and dy * negative_slope elsewhere; NaN/inf in dy propagate.
    NumPy arrays are done in place, in cache-sized chunks (see ``elementwise``)."""

    def layer_setup(self, bottom, top):
        self.negative_slope = float(self.param.relu_param.negative_slope)

    def forward_cpu(self, bottom, top):
        x, y = bottom[0].data, top[0].data
        xp = backend.xp_of(x)
        if self.negative_slope == 0:
            if _fast(x, y):
                elementwise(lambda a, b: np.maximum(a, 0, out=b), x, y)
            else:
                xp.maximum(x, 0, out=y)
            return
        slope = x.dtype.type(self.negative_slope)
        if _fast(x, y):
            same = y is x

            def part(a, b):
                m = np.greater(a, 0, out=_mask(a.size))   # before b (maybe a itself) changes
                np.logical_not(m, out=m)         # not (x > 0): NaN takes the slope
                if not same:
                    np.copyto(b, a)
                np.multiply(b, slope, out=b, where=m)
            elementwise(part, x, y, chunk=_CHUNK)
        else:
            y[...] = xp.where(x > 0, x, x * slope)

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x = bottom[0].data        # the output when in place: same sign
        dy, dx = top[0].diff, bottom[0].diff
        xp = backend.xp_of(dy)
        slope = dy.dtype.type(self.negative_slope)
        if _fast(x, dy, dx):
            if self.negative_slope == 0:
                def part(a, g, out):
                    np.multiply(g, np.greater(a, 0, out=_mask(a.size)), out=out)
            else:
                same = dx is dy

                def part(a, g, out):
                    m = np.greater(a, 0, out=_mask(a.size))
                    np.logical_not(m, out=m)
                    if not same:
                        np.copyto(out, g)
                    np.multiply(out, slope, out=out, where=m)
            elementwise(part, x, dy, dx, chunk=_CHUNK)
        elif self.negative_slope == 0:
            xp.multiply(dy, x > 0, out=dx)
        else:
            dx[...] = xp.where(x > 0, dy, dy * slope)


@register("Sigmoid")
class Sigmoid(_Neuron):
    def forward_cpu(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        # 0.5 * (1 + tanh(x / 2)) equals 1 / (1 + exp(-x)) and never overflows.
        y = xp.tanh(bottom[0].data * 0.5)
        y += 1
        y *= 0.5
        top[0].data[...] = y

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y = top[0].data
            bottom[0].diff[...] = top[0].diff * y * (1 - y)


@register("TanH")
class TanH(_Neuron):
    def forward_cpu(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        xp.tanh(bottom[0].data, out=top[0].data)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y = top[0].data
            bottom[0].diff[...] = top[0].diff * (1 - y * y)


@register("Dropout")
class Dropout(_Neuron):
    """Inverted dropout, as Caffe: kept units are scaled by 1 / (1 - ratio) at
    TRAIN time so TEST is the identity. ``self.mask`` holds the scaled mask
    (0 or 1 / (1 - ratio)) of the last TRAIN forward for backward."""

    def layer_setup(self, bottom, top):
        self.ratio = float(self.param.dropout_param.dropout_ratio)
        if not 0.0 <= self.ratio < 1.0:
            self.fail(f"dropout_ratio must be in [0, 1), got {self.ratio}")
        self.scale = 1.0 / (1.0 - self.ratio)
        self.mask = None

    def forward_cpu(self, bottom, top):
        x = bottom[0].data
        if self.phase != "TRAIN":
            if top[0] is not bottom[0]:
                top[0].data[...] = x
            return
        xp = backend.xp_of(x)
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
        keep = backend.rng().random(x.shape, dtype=dtype) >= self.ratio
        mask = keep.astype(x.dtype)
        mask *= x.dtype.type(self.scale)
        self.mask = xp.asarray(mask)
        xp.multiply(x, self.mask, out=top[0].data)

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if self.phase != "TRAIN":
            if top[0] is not bottom[0]:
                bottom[0].diff[...] = top[0].diff
            return
        xp = backend.xp_of(top[0].diff)
        xp.multiply(top[0].diff, self.mask, out=bottom[0].diff)
