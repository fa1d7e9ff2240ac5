"""A stand-in CuPy that runs the GPU code paths on a CPU, strictly enough to catch
mistakes a real GPU would make silent or fatal.

- ``FakeDeviceArray`` keeps its values private: no ``__array__`` (NumPy cannot
  read it), and ``a[...] = numpy_array`` is refused; only ``get``/``set`` and
  ``cupy.asarray`` cross between host and device, as with CuPy.
- The current (null) stream runs work at once. A ``Stream(non_blocking=True)``
  queues its work and runs it only when an event recorded after it is waited
  for (``Event.synchronize`` or ``Stream.wait_event``): a consumer that forgets
  to wait sees stale device data, and an asynchronous copy reads its host
  source when it runs, so a host buffer overwritten too early shows up too.
- ``set(host, stream=s)`` (asynchronous) insists on pinned host memory, from
  ``cuda.alloc_pinned_memory``; ``counts`` tallies copies and allocations.

Fixture ``fake_gpu`` puts it in ``sys.modules['cupy']`` and switches firecaffe's
backend to it (and back after the test).
"""
import sys
import types

import numpy as np
import pytest

from firecaffe.core import backend


class OutOfMemoryError(MemoryError):
    """Named and placed as cupy.cuda.memory.OutOfMemoryError."""


OutOfMemoryError.__module__ = "cupy.cuda.memory"


class PinnedMemory(bytearray):
    """Host memory from ``alloc_pinned_memory`` (NumPy views of it know their base)."""


def _is_pinned(array):
    base = array
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(getattr(base, "obj", base), PinnedMemory)     # frombuffer keeps a memoryview


class FakeDeviceArray:
    def __init__(self, values, fake):
        self._v = values
        self._fake = fake

    shape = property(lambda self: self._v.shape)
    dtype = property(lambda self: self._v.dtype)
    ndim = property(lambda self: self._v.ndim)
    size = property(lambda self: self._v.size)
    flags = property(lambda self: self._v.flags)

    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed (fake CuPy)")

    def __getitem__(self, key):
        return FakeDeviceArray(self._v[key], self._fake)

    def __setitem__(self, key, value):
        if isinstance(value, FakeDeviceArray):
            value = value._v
        elif isinstance(value, np.ndarray) and value.ndim > 0:
            raise TypeError("fake CuPy: assigning a NumPy array to a device array; use cupy.asarray or set()")
        self._v[key] = value

    def reshape(self, *shape):
        return FakeDeviceArray(self._v.reshape(*shape), self._fake)

    def sum(self):
        return FakeDeviceArray(np.asarray(self._v.sum()), self._fake)

    def __float__(self):
        return float(self._v)

    def copy(self):
        return FakeDeviceArray(self._v.copy(), self._fake)

    def get(self, stream=None, out=None):
        self._fake.counts["get"] += 1
        if out is None:
            return self._v.copy()
        out[...] = self._v
        return out

    def set(self, host, stream=None):
        if not isinstance(host, np.ndarray) or host.shape != self.shape or host.dtype != self.dtype:
            raise ValueError("fake CuPy: set() needs a NumPy array of the same shape and dtype")
        if stream is None:                       # CuPy: a synchronous copy
            self._fake.counts["set"] += 1
            self._v[...] = host
            return
        if not _is_pinned(host):
            raise AssertionError("fake CuPy: an asynchronous copy from pageable host memory")
        self._fake.counts["set_async"] += 1
        target = self._v
        stream._enqueue(lambda: target.__setitem__(Ellipsis, host))    # reads host when it runs

    def __repr__(self):
        return f"FakeDeviceArray({self._v!r})"


class Event:
    def __init__(self, stream, index):
        self.stream, self.index = stream, index

    @property
    def done(self):
        return self.stream.executed >= self.index

    def synchronize(self):
        self.stream._run_until(self.index)


class Stream:
    def __init__(self, non_blocking=False, null=False):
        self.non_blocking, self.null = non_blocking, null
        self.pending, self.executed, self.waits = [], 0, 0

    def _enqueue(self, op):
        if self.null:
            op()
            self.executed += 1
        else:
            self.pending.append(op)

    def _run_until(self, index):
        while self.executed < index:
            self.pending.pop(0)()
            self.executed += 1

    def record(self, event=None):
        return Event(self, self.executed + len(self.pending))

    def wait_event(self, event):
        self.waits += 1
        event.synchronize()           # the null stream runs at once, so it waits right here

    def synchronize(self):
        self._run_until(self.executed + len(self.pending))


def make_fake_cupy():
    fake = types.ModuleType("cupy")
    fake.counts = {"get": 0, "set": 0, "set_async": 0, "pinned": 0, "empty": 0}
    null = Stream(null=True)
    fake.streams = []

    def new_stream(non_blocking=False):
        stream = Stream(non_blocking=non_blocking)
        fake.streams.append(stream)
        return stream

    def alloc_pinned_memory(nbytes):
        fake.counts["pinned"] += 1
        return PinnedMemory(nbytes)

    def empty(shape, dtype=np.float32):
        fake.counts["empty"] += 1
        return FakeDeviceArray(np.full(shape, np.nan, dtype) if np.dtype(dtype).kind == "f"
                               else np.empty(shape, dtype), fake)

    def asarray(array, dtype=None):
        if isinstance(array, FakeDeviceArray):
            return array if dtype is None else FakeDeviceArray(array._v.astype(dtype), fake)
        return FakeDeviceArray(np.array(array, dtype=dtype), fake)

    fake.ndarray = FakeDeviceArray
    fake.empty = empty
    fake.zeros = lambda shape, dtype=np.float32: FakeDeviceArray(np.zeros(shape, dtype), fake)
    fake.asarray = asarray
    fake.asnumpy = lambda a: a.get() if isinstance(a, FakeDeviceArray) else np.asarray(a)
    memory = types.SimpleNamespace(OutOfMemoryError=OutOfMemoryError)
    fake.cuda = types.SimpleNamespace(
        Stream=new_stream, get_current_stream=lambda: null, alloc_pinned_memory=alloc_pinned_memory,
        memory=memory, runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
    fake.null_stream = null
    fake.random = types.SimpleNamespace(seed=lambda value: None)
    return fake


@pytest.fixture
def fake_gpu(monkeypatch):
    """firecaffe in GPU mode on the stand-in CuPy; yields the fake module."""
    fake = make_fake_cupy()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    for key, value in (("gpu", True), ("device", 0), ("cupy", fake)):
        monkeypatch.setitem(backend._state, key, value)
    yield fake
