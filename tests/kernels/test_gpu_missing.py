"""--gpu without CuPy (or without a GPU) is a clear error, and the CPU mode stays on."""
import sys
import types

import pytest

from firecaffe.core import backend
from firecaffe.errors import FirecaffeError


def test_set_mode_gpu_without_cupy_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)          # `import cupy` raises ImportError
    with pytest.raises(FirecaffeError, match=r"pip install 'firecaffe\[gpu\]'"):
        backend.set_mode_gpu()
    assert not backend.gpu_enabled()


def test_set_mode_gpu_without_a_driver_says_so(monkeypatch):
    def no_driver():
        raise RuntimeError("cudaErrorInsufficientDriver")
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=no_driver)))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(FirecaffeError, match="cudaErrorInsufficientDriver.*--cpu"):
        backend.set_mode_gpu()
    assert not backend.gpu_enabled()


def test_set_mode_gpu_with_no_device_or_a_missing_one(monkeypatch):
    for count, device, message in ((0, 0, "no GPU"), (2, 3, "device 3 asked for, but this machine has 2")):
        fake = types.SimpleNamespace(cuda=types.SimpleNamespace(
            runtime=types.SimpleNamespace(getDeviceCount=lambda count=count: count)))
        monkeypatch.setitem(sys.modules, "cupy", fake)
        with pytest.raises(FirecaffeError, match=message):
            backend.set_mode_gpu(device)
        assert not backend.gpu_enabled()
