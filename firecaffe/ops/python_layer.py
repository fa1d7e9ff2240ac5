"""Python layers: ``type: "Python"`` runs a class the user wrote against pycaffe's
``caffe.Layer`` (here ``firecaffe.Layer``).

python_param { module layer param_str share_in_parallel }: ``module`` is imported
from sys.path (PYTHONPATH, and the current directory, which a ``python`` started
there would search too), ``layer`` is the class, constructed with the
LayerParameter as pycaffe does. Before ``setup`` the object gets ``param_str`` and
``phase`` (an int, 0 for TRAIN and 1 for TEST, as pycaffe gives it, so that
``self.phase == caffe.TRAIN`` reads as in pycaffe). As in Caffe, ``reshape`` runs before every ``forward``. Blobs the class
adds with ``self.blobs.add_blob(*shape)`` are learnable parameters of the net.
``loss_weight`` in the prototxt makes a top a loss, as for any layer.
``share_in_parallel`` has no effect: every MPI rank is a process of its own,
with its own instance of the class.

On a GPU the user's code still sees NumPy arrays: the blobs are mirrored on the
host for each call and what the call wrote is copied back.
An exception in the user's code reaches the caller as its own class, as in
pycaffe (a RuntimeError in ``setup`` stays a RuntimeError): a note names the layer,
the call, the class and its file. The command line prints it as one report with
the traceback of the user's frames only (``report``).
"""
import importlib
import os
import sys
import traceback

import numpy as np

from ..core import backend
from ..core.blob import Blob
from ..errors import FirecaffeError, PrototxtError
from . import register
from .base import Layer as _OpLayer

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def report(exc):
    """The report the command line prints for an exception a Python layer raised, or None."""
    return getattr(exc, "_firecaffe_python_layer", None)


class BlobVec(list):
    """pycaffe's ``layer.blobs``: a list of Blobs with ``add_blob(*shape)``."""

    def __init__(self, dtype=np.float32, name=""):
        super().__init__()
        self.dtype, self.name = dtype, name

    def add_blob(self, *shape):
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = tuple(shape[0])
        self.append(Blob(shape, self.dtype, name=f"{self.name}[{len(self)}]"))
        return self[-1]


class Layer:
    """The base class of user-written layers (pycaffe's ``caffe.Layer``).

    Override ``setup(bottom, top)``, ``reshape(bottom, top)``,
    ``forward(bottom, top)`` and ``backward(top, propagate_down, bottom)``; each
    blob offers ``data``, ``diff``, ``reshape(*dims)``, ``shape``, ``count`` and
    ``num``/``channels``/``height``/``width``.
    """

    def __init__(self, layer_param=None):
        self.layer_param = layer_param
        self.param_str = layer_param.python_param.param_str if layer_param is not None else ""
        self.phase = None
        self.blobs = BlobVec()

    @property
    def type(self):
        return "Python"

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        pass


@register("Python")
class PythonLayer(_OpLayer):
    reshape_every_forward = True      # Caffe calls a Python layer's reshape before every forward
    def __init__(self, param, phase="TRAIN", dtype=np.float32):
        super().__init__(param, phase, dtype)
        p = param.python_param
        if not p.module or not p.layer:
            self.fail("python_param needs both 'module' and 'layer'", PrototxtError)
        self.where = f"{p.module}.{p.layer}"
        cls = getattr(self._import(p.module), p.layer, None)
        if cls is None:
            self.fail(f"module '{p.module}' has no class '{p.layer}'", PrototxtError)
        self.user = self._call(cls, "construction", param)
        blobs = getattr(self.user, "blobs", None)
        if not isinstance(blobs, BlobVec):      # a class that skipped Layer.__init__
            self.user.blobs = BlobVec()
        self.user.blobs.dtype, self.user.blobs.name = self.dtype, self.name
        self.user.param_str = p.param_str
        self.user.phase = _phase_value(phase)
        self.user.layer_param = param
        self.blobs = self.user.blobs            # the net collects these as learnable blobs

    def _import(self, module):
        cwd = os.getcwd()
        if cwd not in sys.path and "" not in sys.path:
            sys.path.append(cwd)
        try:
            return importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                self.fail(f"cannot import python_param.module '{module}': no such module on the "
                          f"Python path (PYTHONPATH and {cwd})", PrototxtError)
            self._annotate("import of module '" + module + "'", exc)
            raise
        except Exception as exc:
            self._annotate("import of module '" + module + "'", exc)
            raise

    def _call(self, method, what, *args):
        try:
            return method(*args)
        except FirecaffeError:
            raise
        except Exception as exc:
            self._annotate(what, exc)
            raise

    def _annotate(self, what, exc):
        """Name the layer, the call and the user's file on ``exc``, keeping its class."""
        module = sys.modules.get(self.where.rsplit(".", 1)[0])
        source = getattr(module, "__file__", None) or getattr(exc, "filename", None) or "?"
        where = f"layer '{self.name}' (Python, {self.where}, {source}): {what} failed"
        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if not os.path.abspath(f.filename).startswith(_PACKAGE_DIR + os.sep)]
        text = "".join(["Traceback (most recent call last):\n"] + traceback.format_list(frames)
                       + traceback.format_exception_only(type(exc), exc)).rstrip()
        try:
            exc._firecaffe_python_layer = f"{where}:\n{text}"
        except AttributeError:                  # a class with __slots__: the note still says it
            pass
        if hasattr(exc, "add_note"):
            exc.add_note(where)
        elif len(exc.args) == 1 and isinstance(exc.args[0], str):      # Python < 3.11
            exc.args = (f"{exc.args[0]} [{where}]",)

    # --- lifecycle: hand the blobs to the user's object --------------------------
    def layer_setup(self, bottom, top):
        with _host_view(bottom, top) as (b, t):
            self._call(self.user.setup, "setup", b, t)

    def reshape(self, bottom, top):
        with _host_view(bottom, top) as (b, t):
            self._call(self.user.reshape, "reshape", b, t)

    def forward(self, bottom, top):
        with _host_view(bottom, top, tops_out=True) as (b, t):
            self._call(self.user.forward, "forward", b, t)

    def backward(self, top, propagate_down, bottom):
        with _host_view(bottom, top, bottoms_out=True) as (b, t):
            self._call(self.user.backward, "backward", t, list(propagate_down), b)


def _phase_value(phase):
    """pycaffe gives a Python layer its phase as an int (caffe.TRAIN = 0, TEST = 1)."""
    from ..proto import caffe_pb2
    return caffe_pb2.Phase.Value(phase.upper()) if isinstance(phase, str) else int(phase)


class _HostBlob:
    """A blob as NumPy arrays for the user's code, mirroring a device blob."""

    def __init__(self, blob):
        self.blob, self.name = blob, blob.name
        self._pull()

    def _pull(self):
        self.data, self.diff = backend.to_host(self.blob.data).copy(), backend.to_host(self.blob.diff).copy()

    def push(self, which):
        target = getattr(self.blob, which)
        target[...] = backend.xp_of(target).asarray(getattr(self, which))

    def reshape(self, *shape):
        self.blob.reshape(*shape)
        if self.data.shape != self.blob.shape:
            self._pull()

    shape = property(lambda self: self.data.shape)
    count = property(lambda self: int(self.data.size))
    ndim = property(lambda self: self.data.ndim)
    _legacy = Blob._legacy
    num, channels, height, width = Blob.num, Blob.channels, Blob.height, Blob.width


class _host_view:
    """The blobs themselves on the CPU; NumPy mirrors on a GPU, written back on exit."""

    def __init__(self, bottom, top, tops_out=False, bottoms_out=False):
        self.bottom, self.top = bottom, top
        self.tops_out, self.bottoms_out = tops_out, bottoms_out
        self.mirrored = backend.on_device((*top, *bottom))

    def __enter__(self):
        if not self.mirrored:
            return list(self.bottom), list(self.top)
        self.b = [_HostBlob(x) for x in self.bottom]
        self.t = [_HostBlob(x) for x in self.top]
        return self.b, self.t

    def __exit__(self, kind, value, tb):
        if self.mirrored and kind is None:
            for mirror in self.t if self.tops_out else ():
                mirror.push("data")
            for mirror in self.b if self.bottoms_out else ():
                mirror.push("diff")
        return False
