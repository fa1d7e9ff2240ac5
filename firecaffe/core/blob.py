"""Blob: an N-d array of data with a same-shaped array of gradients (diff)."""
import os

import numpy as np

from . import backend
from ..errors import ShapeError


class Blob:
    """Caffe's Blob: ``data`` and ``diff`` arrays of one shape.

    Learnable blobs are views into the net's flat parameter and gradient arenas; a
    train net's are never rebound after it is built, only written in place (a test
    net's are rebound once, to the train net's, when the solver shares its weights).
    """

    def __init__(self, shape=(), dtype=np.float32, name=""):
        self.name = name
        self.dtype = np.dtype(dtype)
        self.data = None
        self.diff = None
        self.reshape(shape)

    def reshape(self, *shape):
        """``reshape((n, c, h, w))`` or, as in pycaffe, ``reshape(n, c, h, w)``."""
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = shape[0]
        shape = tuple(int(s) for s in shape)
        if self.data is not None and self.data.shape == shape:
            return
        if any(s < 0 for s in shape):
            raise ShapeError(f"blob '{self.name}': negative dimension in shape {shape}")
        _check_fits(self.name, shape, self.dtype)
        xp = backend.xp()
        self.data = xp.zeros(shape, dtype=self.dtype)
        self.diff = xp.zeros(shape, dtype=self.dtype)

    def reshape_like(self, other):
        self.reshape(other.shape)

    @property
    def shape(self):
        return self.data.shape

    @property
    def count(self):
        return int(np.prod(self.data.shape, dtype=np.int64))

    @property
    def ndim(self):
        return self.data.ndim

    def _legacy(self, axis):
        return self.shape[axis] if self.ndim > axis else 1

    num = property(lambda self: self._legacy(0))
    channels = property(lambda self: self._legacy(1))
    height = property(lambda self: self._legacy(2))
    width = property(lambda self: self._legacy(3))

    def canonical_axis(self, axis):
        """Caffe's CanonicalAxisIndex: negative axes count from the end."""
        if not -self.ndim <= axis < max(self.ndim, 1):
            raise ValueError(f"axis {axis} out of range for a {self.ndim}-d blob {self.shape}")
        return axis % max(self.ndim, 1)

    def count_range(self, start, end=None):
        end = self.ndim if end is None else end
        return int(np.prod(self.shape[start:end], dtype=np.int64))

    def __repr__(self):
        return f"Blob({self.name!r}, shape={self.shape})"


def shape_str(shape):
    """Caffe's shape string: '64 3 224 224 (9633792)'."""
    shape = tuple(shape)
    return " ".join(str(s) for s in shape) + f" ({int(np.prod(shape, dtype=np.int64))})"


def _check_fits(name, shape, dtype):
    """Refuse, before allocating, a blob larger than the memory of the machine (or GPU)."""
    nbytes = float(np.prod(shape, dtype=np.float64)) * dtype.itemsize * 2      # data and diff
    if nbytes > 2**30 and nbytes > _memory_bytes():
        raise ShapeError(f"blob '{name}' of shape {' '.join(map(str, shape))} needs {nbytes / 2**30:.4g} GiB "
                         f"(data and diff), more than the {_memory_bytes() / 2**30:.4g} GiB of memory here; "
                         "reduce the batch size or the input size")


def _memory_bytes():
    xp = backend.xp()
    if xp is np:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return xp.cuda.Device().mem_info[1]
