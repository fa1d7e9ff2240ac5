"""firecaffe: Caffe networks on NumPy/CuPy, trained data-parallel over MPI.

The Python API is pycaffe's, so ``import firecaffe as caffe`` runs pycaffe code::

    import firecaffe as caffe
    net = caffe.Net("deploy.prototxt", "weights.caffemodel", caffe.TEST)
    out = net.forward(data=images)

Net, TRAIN/TEST, solvers (SGDSolver, ..., get_solver), io, NetSpec with
layers/params, draw, Classifier, Detector, coord_map, set_mode_cpu/gpu,
set_device, layer_type_list, Timer; ``from firecaffe.proto import caffe_pb2``.
"""
__version__ = "0.1.0"

import os as _os
import sys as _sys

from .run import early_signals as _early_signals

if _early_signals.started_as_command(getattr(_sys, "orig_argv", [])):
    _early_signals.defer()       # a Ctrl-C during start-up: no KeyboardInterrupt inside an import

# OpenBLAS's idle threads spin for about 2^28 cycles (~0.1 s) after every GEMM; on a
# machine with few cores they then steal the CPU from the NumPy passes that follow a
# convolution (pooling, ReLU, im2col), up to 1.5x slower. 2^14 cycles (a few us) still
# bridges the back-to-back per-sample GEMMs of one layer; 2^4 (sleep at once) makes
# every GEMM wake its threads and was slower (docs/performance.md). Only takes effect
# when numpy was not loaded before firecaffe; a value the user set wins.
if "numpy" not in _sys.modules:
    _os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "14")

from .core.backend import seed as set_random_seed, set_mode_cpu  # noqa: E402
from .errors import FirecaffeError  # noqa: E402
from .engine.net import Net  # noqa: E402
from .proto import caffe_pb2  # noqa: E402
from .proto.caffe_pb2 import TRAIN, TEST  # noqa: E402  (0 and 1, as in pycaffe; "TRAIN"/"TEST" work too)
from .pycaffe import Timer, has_nccl, layer_type_list, set_device, set_mode_gpu, init_log, log  # noqa: E402
from .net_spec import layers, params, NetSpec, to_proto  # noqa: E402
from . import io  # noqa: E402
from .ops.python_layer import Layer  # noqa: E402  (pycaffe's base class of Python layers)

_SOLVER_NAMES = ("Solver", "get_solver", "SGDSolver", "NesterovSolver", "AdaGradSolver",
                 "RMSPropSolver", "AdaDeltaSolver", "AdamSolver")
_LAZY = {"Classifier": ("classifier", "Classifier"), "Detector": ("detector", "Detector"),
         "draw": ("draw", None), "coord_map": ("coord_map", None), "net_spec": ("net_spec", None)}


def __getattr__(name):
    """Solvers, Classifier, Detector, draw and coord_map load on first use."""
    import importlib
    if name in _SOLVER_NAMES:           # pycaffe's classes (caffe.Solver has share_weights)
        from .solvers import pycaffe
        return getattr(pycaffe, name)
    if name in _LAZY:
        module_name, attr = _LAZY[name]
        module = importlib.import_module(f".{module_name}", __name__)
        return module if attr is None else getattr(module, attr)
    raise AttributeError(f"module 'firecaffe' has no attribute {name!r}")


__all__ = ["Net", "Layer", "TRAIN", "TEST", "FirecaffeError", "set_mode_cpu", "set_mode_gpu", "set_device",
           "set_random_seed", "layer_type_list", "has_nccl", "Timer", "init_log", "log", "io", "layers", "params",
           "NetSpec", "to_proto", "caffe_pb2", *_SOLVER_NAMES, *_LAZY]
