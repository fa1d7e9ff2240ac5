"""oneDNN, the CPU engine of the layers where it pays (Convolution and
Deconvolution), loaded with ctypes through its C API (firecaffe/ops/dnnl/api.py).

``AVAILABLE`` says whether the library loaded; when it did not, one warning
line says why and the layers run their NumPy path. A layer whose shape oneDNN
refuses runs its NumPy path too (``refused`` words its one log line).
"""
from ...core.log import LOGGER
from . import api

AVAILABLE = api.LIB is not None
VERSION = api.VERSION
REASON = api.REASON
DnnlError = api.DnnlError

if not AVAILABLE and api.REASON and not api.REASON.startswith(api.ENV_LIB):
    LOGGER.warning(f"oneDNN is not used, layers run their NumPy path: {api.REASON}")


def refused(layer, exc):
    """Log (once per layer) that ``layer`` runs its NumPy path because oneDNN refused it."""
    LOGGER.warning(f"layer '{layer.name}' ({layer.type}): oneDNN refused it ({exc}); "
                   f"it runs the NumPy path")
