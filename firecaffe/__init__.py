"""firecaffe: Caffe networks on NumPy/CuPy, trained data-parallel over MPI.

The Python API follows pycaffe::

    import firecaffe
    net = firecaffe.Net("deploy.prototxt", "weights.caffemodel", firecaffe.TEST)
    out = net.forward(data=images)
"""
__version__ = "0.1.0"

import os as _os
import sys as _sys

# OpenBLAS's idle threads spin for about 2^28 cycles (~0.1 s) after every GEMM; on a
# machine with few cores they then steal the CPU from the NumPy passes that follow a
# convolution (pooling, ReLU, im2col), up to 1.5x slower. 2^14 cycles (a few us) still
# bridges the back-to-back per-sample GEMMs of one layer; 2^4 (sleep at once) makes
# every GEMM wake its threads and was slower (docs/performance.md). Only takes effect
# when numpy was not loaded before firecaffe; a value the user set wins.
if "numpy" not in _sys.modules:
    _os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "14")

from .core.backend import seed as set_random_seed, set_mode_cpu, set_mode_gpu  # noqa: E402
from .errors import FirecaffeError  # noqa: E402
from .engine.net import Net  # noqa: E402
from .ops.python_layer import Layer  # noqa: E402  (pycaffe's base class of Python layers)

TRAIN = "TRAIN"
TEST = "TEST"


def set_device(device_id):
    set_mode_gpu(device_id)


_SOLVER_NAMES = ("Solver", "get_solver", "SGDSolver", "NesterovSolver", "AdaGradSolver",
                 "RMSPropSolver", "AdaDeltaSolver", "AdamSolver")


def __getattr__(name):
    """Solvers load lazily (pycaffe's names: get_solver, SGDSolver, ...)."""
    if name in _SOLVER_NAMES:
        from . import solvers
        return getattr(solvers, name)
    raise AttributeError(f"module 'firecaffe' has no attribute {name!r}")


__all__ = ["Net", "Layer", "TRAIN", "TEST", "FirecaffeError", "set_mode_cpu", "set_mode_gpu",
           "set_device", "set_random_seed"]
