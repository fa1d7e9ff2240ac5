"""Blob: an N-d array of data with a same-shaped array of gradients (diff)."""
import os

import numpy as np

from . import backend
from ..errors import ShapeError

MAX_AXES = 32           # Caffe's kMaxBlobAxes: Blob::Reshape refuses more


class Storage:
    """What a sparse copy of a weight (ops/sparse_ip.py) needs to know about the array behind a
    learnable blob, shared by every blob that aliases it (share_with, PERMISSIVE sharing):
    ``exposed`` once its array was handed out through ``Blob.data`` (a pycaffe script may hold a
    view and write through it at any time: a copy of it is verified before each use from then on)."""

    __slots__ = ("exposed",)

    def __init__(self, exposed=False):
        self.exposed = exposed


_epoch = [0]


def weights_epoch():
    """A counter the engine bumps at every write it makes to learnable weights (Blob.write,
    Blob.alias, rebinding ``Blob.data``, any read of a net's ``param_arena``: the solver, the
    communicators, snapshots and compress write through it). Unchanged epoch and unexposed
    storage: no weight changed since."""
    return _epoch[0]


def weights_changed():
    _epoch[0] += 1


class Blob:
    """Caffe's Blob: ``data`` and ``diff`` arrays of one shape.

    Learnable blobs are views into the net's flat parameter and gradient arenas; a
    train net's are never rebound after it is built, only written in place (a test
    net's are rebound once, to the train net's, when the solver shares its weights).

    A learnable blob (``learnable``, set by Layer.make_blob) tracks its writers for the sparse
    copies of its weights (ops/sparse_ip.py): reading ``data`` marks its ``storage`` exposed,
    assigning it bumps ``weights_epoch``; the engine's own reads go through ``weights`` (no
    exposure) and its writes through ``write``/``alias`` (counted).
    """

    learnable = False

    def __init__(self, shape=(), dtype=np.float32, name="", ledger=None):
        self.name = name
        self.dtype = np.dtype(dtype)
        self.ledger = None
        self._data = None
        self.diff = None
        self.storage = Storage()
        self.reshape(shape)
        self.ledger = ledger        # a net's MemoryLedger: its reshapes from now on count in the net's sum

    def reshape(self, *shape):
        """``reshape((n, c, h, w))`` or, as in pycaffe, ``reshape(n, c, h, w)``."""
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = shape[0]
        if len(shape) > MAX_AXES:
            raise ShapeError(f"{self._who()}: a shape of {len(shape)} axes; a blob has at most {MAX_AXES} "
                             "(Caffe's kMaxBlobAxes)")
        shape = tuple(int(s) for s in shape)
        if self._data is not None and self._data.shape == shape:
            return
        if any(s < 0 for s in shape):
            raise ShapeError(f"{self._who()}: negative dimension in shape {shape}")
        _check_fits(self.name, shape, self.dtype)
        if self.ledger is not None:
            self.ledger.charge(self, shape)
        xp = backend.xp()
        self.rebind(xp.zeros(shape, dtype=self.dtype))
        self.diff = xp.zeros(shape, dtype=self.dtype)

    @property
    def data(self):
        """The data array (pycaffe's ``blob.data``); for a learnable blob, handing it out marks
        its storage exposed (the caller may keep it and write it later)."""
        if self.learnable:
            self.storage.exposed = True
        return self._data

    @data.setter
    def data(self, value):
        """Rebinding to an array the caller holds: a new, exposed storage."""
        self.rebind(value)
        if self.learnable:
            self.storage = Storage(exposed=True)

    @property
    def weights(self):
        """The data array for the engine's own reads (not an exposure; never keep it to write)."""
        return self._data

    def rebind(self, array):
        """The engine points the blob at ``array`` (an arena view it owns)."""
        self._data = array
        if self.learnable:
            weights_changed()

    def write(self, values):
        """The engine writes ``values`` into the data in place (loading weights)."""
        self._data[...] = values
        if self.learnable:
            weights_changed()

    def alias(self, source):
        """Read ``source``'s data (no copy), with its storage: share_with, PERMISSIVE sharing."""
        self.rebind(source._data if source._data.shape == self.shape else source._data.reshape(self.shape))
        self.storage = source.storage

    def _who(self):
        layer = self.ledger.layer if self.ledger is not None else ""
        return f"layer '{layer}': blob '{self.name}'" if layer else f"blob '{self.name}'"

    def reshape_like(self, other):
        self.reshape(other.shape)

    @property
    def shape(self):
        return self._data.shape

    @property
    def count(self):
        return int(np.prod(self._data.shape, dtype=np.int64))

    @property
    def ndim(self):
        return self._data.ndim

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


def _nbytes(shape, dtype):
    return float(np.prod(shape, dtype=np.float64)) * dtype.itemsize * 2         # data and diff


def _check_fits(name, shape, dtype):
    """Refuse, before allocating, a blob larger than the memory of the machine (or GPU)."""
    nbytes = _nbytes(shape, dtype)
    if nbytes > 2**30 and nbytes > _memory_bytes():
        raise ShapeError(f"blob '{name}' of shape {' '.join(map(str, shape))} needs {nbytes / 2**30:.4g} GiB "
                         f"(data and diff), more than the {_memory_bytes() / 2**30:.4g} GiB of memory here; "
                         "reduce the batch size or the input size")


def _memory_bytes():
    xp = backend.xp()
    if xp is np:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return xp.cuda.Device().mem_info[1]


class MemoryLedger:
    """The bytes of a net's blobs (data and diff), each charged before it is allocated: a net whose
    blobs together need more than the memory here is refused at the blob that would pass it (each
    blob alone may fit), naming the largest. ``layer`` is the layer being set up (set by the net)."""

    def __init__(self):
        self.layer = ""
        self.total = 0.0
        self._held = {}             # id(blob) -> (bytes, blob name, layer that shaped it)

    def charge(self, blob, shape, label=None, copies=2):
        """``blob`` now holds ``copies`` arrays of ``shape`` (data and diff; 1: its data is shared)."""
        nbytes = _nbytes(shape, blob.dtype) * copies / 2
        old = self._held.get(id(blob), (0.0,))[0]
        total = self.total - old + nbytes
        if total > 2**30 and nbytes > old and total > _memory_bytes():
            self._refuse(label or f"blob '{blob.name}' ({' '.join(map(str, shape))})", nbytes, total)
        self._held[id(blob)] = (nbytes, label or f"'{blob.name}'", self.layer)
        self.total = total

    def charge_params(self, layer_name, blobs):
        """A layer's learnable blobs, made by its setup; charged under the layer's name."""
        for k, blob in enumerate(blobs):
            self.charge(blob, blob.shape, label=f"weights {k} of layer '{layer_name}'")

    def _refuse(self, what, nbytes, total):
        held = sorted(self._held.values(), key=lambda h: -h[0])[:3]
        largest = ", ".join(f"{name} {b / 2**30:.3g} GiB (layer '{layer}')" for b, name, layer in held)
        raise ShapeError(f"layer '{self.layer}': the net's blobs need {total / 2**30:.4g} GiB together (data and diff) with "
                         f"{what} ({nbytes / 2**30:.3g} GiB), more than the {_memory_bytes() / 2**30:.4g} GiB "
                         f"of memory here; the largest so far: {largest}; reduce the batch size or the input size")
