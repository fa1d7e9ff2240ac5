"""A stand-in for CuPy, enough to drive ``Strategy.staged`` through its device path on a CPU.

``install()`` puts it in ``sys.modules["cupy"]``. A ``FakeDeviceArray`` keeps its
data private, so a strategy that handed it to MPI or NumPy without staging it
through the (fake) pinned host buffer would fail; ``transfers`` counts copies.
"""
import sys
import types

import numpy as np

transfers = {"get": 0, "set": 0}


class FakeDeviceArray:
    def __init__(self, host):
        self._device = np.array(host)
        self.ndim, self.size, self.dtype = 1, self._device.size, self._device.dtype
        self.flags = self._device.flags

    def get(self, out):
        transfers["get"] += 1
        out[...] = self._device

    def set(self, host):
        transfers["set"] += 1
        self._device[...] = host

    def copy_to_host(self):
        return self._device.copy()


class _Stream:
    def synchronize(self):
        pass


def install():
    cupy = types.ModuleType("cupy")
    cupy.ndarray = FakeDeviceArray
    cupy.cuda = types.SimpleNamespace(get_current_stream=_Stream,
                                      alloc_pinned_memory=lambda nbytes: bytearray(nbytes))
    sys.modules["cupy"] = cupy
