"""GPU tests: skipped, with the reason, where CuPy or a CUDA device is missing.

Fixture ``gpu`` switches firecaffe to GPU mode (and back), with the kernel paths
of firecaffe.ops.gpu_ops attached to the layers that do not carry their own yet.
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
def gpu(cupy, monkeypatch):
    from firecaffe.core import backend
    import firecaffe.ops.gpu_ops as gpu_ops
    from firecaffe.ops import LAYERS
    for type_name in gpu_ops.GPU_METHODS:          # undo install() after the test
        for attr in ("forward_gpu", "backward_gpu"):
            monkeypatch.setattr(LAYERS[type_name], attr, getattr(LAYERS[type_name], attr))
    gpu_ops.install()
    backend.set_mode_gpu(0)
    yield cupy
    backend.set_mode_cpu()
