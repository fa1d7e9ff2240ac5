"""Array module selection (NumPy on the CPU, CuPy on a GPU) and the global RNG.

Layers are written once against ``xp``; ``xp_of(array)`` tells which module an
array belongs to, so CPU and GPU share one code path wherever the array APIs
agree. ``set_mode_gpu`` is the only place that imports CuPy.
"""
import contextlib

import numpy as np

from ..errors import FirecaffeError

_state = {"gpu": False, "device": 0, "cupy": None}
_rng = {"gen": np.random.default_rng(0)}


def set_mode_cpu():
    _state["gpu"] = False


def set_mode_gpu(device_id=0, wrap=False):
    """Run layers on GPU ``device_id`` through CuPy; a clear error if there is none.

    ``wrap`` takes the id modulo the visible devices (ranks of a node beyond its
    GPU count, or a launcher that binds each rank to one visible GPU)."""
    try:
        import cupy
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # ImportError, or CUDA driver/runtime missing
        raise FirecaffeError(
            f"--gpu needs CuPy and an NVIDIA GPU ({type(exc).__name__}: {exc}); "
            "install them with: pip install 'firecaffe[gpu]', or run with --cpu") from None
    if count == 0:
        raise FirecaffeError("--gpu: CUDA reports no GPU on this machine; run with --cpu")
    if wrap:
        device_id %= count
    if not 0 <= device_id < count:
        raise FirecaffeError(f"--gpu: device {device_id} asked for, but this machine has {count}")
    cupy.cuda.Device(device_id).use()
    _state.update(gpu=True, device=device_id, cupy=cupy)


def gpu_enabled():
    return _state["gpu"]


def xp():
    """The array module that new arrays are made with: numpy or cupy."""
    return _state["cupy"] if _state["gpu"] else np


def xp_of(array):
    """The array module ``array`` belongs to."""
    cupy = _state["cupy"]
    if cupy is not None and isinstance(array, cupy.ndarray):
        return cupy
    return np


def on_device(blobs):
    """Whether the first of ``blobs`` holding data holds it on a GPU: the array's type decides which
    path a layer runs (Chainer's rule), not the mode set for the arrays made next."""
    for blob in blobs:
        if blob.data is not None:
            return xp_of(blob.data) is not np
    return False


@contextlib.contextmanager
def using_rng(generator):
    """Draw from ``generator`` instead of the global one inside the block (data staging reads a
    batch ahead with a copy of the generator, so that what it draws can be checked and replayed)."""
    saved, _rng["gen"] = _rng["gen"], generator
    try:
        yield generator
    finally:
        _rng["gen"] = saved


def to_host(array):
    """A NumPy copy (or the array itself) of a NumPy or CuPy array."""
    return array.get() if hasattr(array, "get") and not isinstance(array, np.ndarray) else np.asarray(array)


def seed(value):
    """Seed every random source firecaffe uses (fillers, Dropout, shuffling)."""
    _rng["gen"] = np.random.default_rng(value)
    if _state["cupy"] is not None:
        _state["cupy"].random.seed(value)


def rng():
    """The global NumPy random Generator."""
    return _rng["gen"]
