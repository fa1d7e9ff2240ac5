"""pycaffe's module-level helpers: set_device, set_mode_gpu (honouring set_device),
layer_type_list, has_nccl, Timer, init_log and log."""
import time

from .core import backend
from .core.log import LOGGER, setup as setup_logging

_device = {"id": 0}


def set_device(device_id):
    """Choose the GPU that set_mode_gpu() uses (switches now if already in GPU mode)."""
    _device["id"] = int(device_id)
    if backend.gpu_enabled():
        backend.set_mode_gpu(_device["id"])


def set_mode_gpu(device_id=None, wrap=False):
    """Run on the GPU chosen by set_device (or ``device_id``)."""
    backend.set_mode_gpu(_device["id"] if device_id is None else device_id, wrap)


def layer_type_list():
    """The layer type names this build knows, sorted (Caffe's LayerRegistry list)."""
    from .ops import LAYERS
    return sorted(LAYERS)


def has_nccl():
    """False: firecaffe's Python API has no pycaffe ``caffe.NCCL`` object (multi-GPU training
    from Python); GPUs train together through `mpirun firecaffe train --comm nccl`."""
    return False


class Timer:
    """pycaffe's Timer: start(), stop(), and ``ms`` (elapsed milliseconds, running or stopped)."""

    def __init__(self):
        self._start = self._stop = None

    def start(self):
        self._start, self._stop = time.perf_counter(), None

    def stop(self):
        if self._start is not None:
            self._stop = time.perf_counter()

    @property
    def ms(self):
        if self._start is None:
            return 0.0
        end = self._stop if self._stop is not None else time.perf_counter()
        return (end - self._start) * 1e3


def init_log(level=0, stderr=True):
    """Log in Caffe's format to stderr; ``level`` is glog's (0 INFO, 1 WARNING, 2 ERROR)."""
    names = {0: "INFO", 1: "WARNING", 2: "ERROR", 3: "CRITICAL"}
    setup_logging(level=names.get(int(level), "INFO"))


def log(message):
    LOGGER.info(message)
