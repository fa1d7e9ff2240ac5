"""GPU tests: skipped, with the reason, where CuPy or a CUDA device is missing; a CuPy that is
installed but fails to import, or fails otherwise than for want of a GPU, fails them (broken).

Fixture ``gpu`` switches firecaffe to GPU mode (and back); the layers run their
own forward_gpu/backward_gpu (or, written against ``xp``, their one path).
"""
import importlib

import pytest


def _cupy_or_skip():
    try:
        cupy = importlib.import_module("cupy")
    except ModuleNotFoundError as exc:
        if exc.name != "cupy":
            raise                # CuPy is there but something it imports is not: a broken install
        pytest.skip("CuPy is not installed (pip install 'firecaffe[gpu]')")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as exc:     # no driver, no device
        pytest.skip(f"CuPy cannot reach a GPU: {exc}")
    if count < 1:
        pytest.skip("CUDA reports no GPU on this machine")
    return cupy


@pytest.fixture
def cupy():
    return _cupy_or_skip()


@pytest.fixture
def gpu(cupy):
    from firecaffe.core import backend
    backend.set_mode_gpu(0)
    yield cupy
    backend.set_mode_cpu()
