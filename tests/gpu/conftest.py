"""GPU tests: skipped, with the reason, where CuPy or a CUDA device is missing.

Fixture ``gpu`` switches firecaffe to GPU mode (and back); the layers run their
own forward_gpu/backward_gpu (or, written against ``xp``, their one path).
"""
import pytest


def _cupy_or_skip():
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed (pip install 'firecaffe[gpu]')")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:     # no driver, no runtime
        pytest.skip(f"CuPy cannot reach a GPU: {type(exc).__name__}: {exc}")
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
