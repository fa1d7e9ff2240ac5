"""Weight fillers with Caffe's semantics: constant, uniform, gaussian,
positive_unitball, xavier, msra, bilinear.

``fill(filler_param, shape, dtype)`` returns a new NumPy array, drawn from the
global generator in ``backend.rng()`` so a seeded run is reproducible.
"""
import numpy as np

from . import backend
from ..errors import PrototxtError


def _fans(shape):
    count = int(np.prod(shape, dtype=np.int64))
    fan_in = count // shape[0] if len(shape) else 1
    fan_out = count // shape[1] if len(shape) > 1 else count
    return fan_in, fan_out


def _scale_n(param, shape):
    fan_in, fan_out = _fans(shape)
    norm = param.variance_norm
    if norm == param.FAN_OUT:
        return fan_out
    if norm == param.AVERAGE:
        return (fan_in + fan_out) / 2.0
    return fan_in


def _bilinear(shape):
    if len(shape) != 4 or shape[2] != shape[3]:
        raise PrototxtError(f"bilinear filler needs a 4-d blob with square kernels, got shape {shape}")
    k = shape[3]
    f = np.ceil(k / 2.0)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    x = np.arange(k)
    weights_1d = 1 - np.abs(x / f - c)
    return np.broadcast_to(np.outer(weights_1d, weights_1d), shape)


def fill(param, shape, dtype=np.float32):
    """Values for a blob of ``shape`` drawn as the FillerParameter ``param`` says."""
    shape = tuple(shape)
    gen = backend.rng()
    kind = param.type
    if 0 in shape and kind in ("constant", "uniform", "gaussian", "positive_unitball", "xavier", "msra"):
        return np.zeros(shape, dtype=dtype)          # nothing to fill (and no fan to divide by)
    if kind == "constant":
        out = np.full(shape, param.value)
    elif kind == "uniform":
        out = gen.uniform(param.min, param.max, shape)
    elif kind == "gaussian":
        out = gen.normal(param.mean, param.std, shape)
        if param.sparse >= 0:
            if len(shape) < 2:
                raise PrototxtError("gaussian filler with sparse needs a blob of 2 or more axes")
            out *= gen.random(shape) < param.sparse / shape[0]
    elif kind == "positive_unitball":
        out = gen.uniform(0, 1, shape)
        rows = out.reshape(shape[0], -1) if shape else out.reshape(1, -1)
        rows /= rows.sum(axis=1, keepdims=True)
    elif kind == "xavier":
        scale = np.sqrt(3.0 / _scale_n(param, shape))
        out = gen.uniform(-scale, scale, shape)
    elif kind == "msra":
        out = gen.normal(0.0, np.sqrt(2.0 / _scale_n(param, shape)), shape)
    elif kind == "bilinear":
        out = _bilinear(shape)
    else:
        raise PrototxtError(
            f"unknown filler type '{kind}' (known: constant, uniform, gaussian, "
            "positive_unitball, xavier, msra, bilinear)")
    return np.asarray(out, dtype=dtype)
