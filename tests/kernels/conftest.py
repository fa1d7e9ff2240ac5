"""The CPU shim: firecaffe/kernels/*.cu built with g++ (shim/cuda_shim.h makes a
launch one thread that walks every grid-stride index), loaded with ctypes.

Fixture ``shim_gpu`` runs the layers' own GPU methods on the CPU: it puts the
shim in ``firecaffe.kernels.launcher`` (the one indirection every kernel launch
goes through) and gives firecaffe's backend a stand-in CuPy, ``ShimCupy``, whose
arrays are ``DeviceArray`` (NumPy memory the shim can read, but of a type that
``backend.xp_of`` attributes to the stand-in, so im2col/col2im choose their
kernels for it). No layer class is touched.
"""
import contextlib
import ctypes
import os
import shutil
import subprocess
import types

import numpy as np
import pytest

import firecaffe.kernels as kernels
from firecaffe.core import backend
from tests import _required

SHIM_HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim", "cuda_shim.h")


class Shim:
    def __init__(self, libraries):
        self.libraries = libraries

    @staticmethod
    def _c_arg(value):
        if isinstance(value, np.ndarray):
            assert value.flags.c_contiguous, "kernels take C-contiguous arrays"
            return ctypes.c_void_p(value.ctypes.data)
        if isinstance(value, np.float32):
            return ctypes.c_float(value)
        if isinstance(value, np.float64):
            return ctypes.c_double(value)
        if isinstance(value, (np.int32, int)):
            return ctypes.c_int(int(value))
        raise TypeError(f"no C type for kernel argument {value!r} ({type(value).__name__})")

    def launch(self, file, name, dtype, count, args):
        """Same signature as firecaffe.kernels.launcher."""
        function = getattr(self.libraries[file.replace(".cu", "")], f"{name}_{kernels.suffix(dtype)}")
        function.restype = None
        function(*(self._c_arg(a) for a in args))


@pytest.fixture(scope="session")
def shim(tmp_path_factory):
    compiler = shutil.which("g++")
    if compiler is None:
        _required.missing("g++ is not installed (apt-get install g++): the CPU shim for the CUDA kernels "
                          "cannot be built")
    out = tmp_path_factory.mktemp("kernel_shim")
    jobs = {}
    for file in kernels.SOURCES:
        stem = file[:-3]
        cmd = [compiler, "-O1", "-std=c++14", "-shared", "-fPIC", "-Wall", "-Werror",
               "-include", SHIM_HEADER, "-I", kernels.KERNEL_DIR, "-x", "c++",
               os.path.join(kernels.KERNEL_DIR, file), "-o", str(out / f"{stem}.so")]
        jobs[stem] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    libraries = {}
    for stem, job in jobs.items():
        log = job.communicate()[0]
        assert job.returncode == 0, f"g++ could not build {stem}.cu through the shim:\n{log}"
        libraries[stem] = ctypes.CDLL(str(out / f"{stem}.so"))
        for name in kernels.ENTRY_POINTS[f"{stem}.cu"]:
            for suffix in ("f32", "f64"):
                assert hasattr(libraries[stem], f"{name}_{suffix}"), f"{stem}.cu has no {name}_{suffix}"
    return Shim(libraries)


class DeviceArray(np.ndarray):
    """Host memory standing for device memory (NumPy keeps the subclass through
    views, ufuncs and matmul)."""

    def get(self):
        return np.array(self)


def _on_device(value):
    return value.view(DeviceArray) if isinstance(value, np.ndarray) else value


class ShimCupy(types.ModuleType):
    """NumPy dressed as CuPy: every function returns DeviceArray; ``launched``
    lists the (file, kernel) pairs run through the shim."""
    ndarray = DeviceArray

    def __init__(self):
        super().__init__("cupy")
        self.launched = []
        self.random = types.SimpleNamespace(random_sample=self._random_sample, seed=lambda value: None)

    @staticmethod
    def _random_sample(shape, dtype=np.float64):
        return _on_device(np.random.default_rng(0).random(shape, dtype=dtype))

    @staticmethod
    def asnumpy(array):
        return np.array(array)

    @staticmethod
    @contextlib.contextmanager
    def mode(gpu):
        """firecaffe's GPU mode on (``gpu=True``) or off for the block."""
        before = backend._state["gpu"]
        backend._state["gpu"] = gpu
        try:
            yield
        finally:
            backend._state["gpu"] = before

    def __getattr__(self, name):
        value = getattr(np, name)
        if isinstance(value, type) or not callable(value):
            return value
        return lambda *args, **kwargs: _on_device(value(*args, **kwargs))


@pytest.fixture
def shim_gpu(shim, monkeypatch):
    """The stand-in CuPy (GPU mode off; ``with shim_gpu.mode(True):`` turns it on), kernels on the shim."""
    xp = ShimCupy()

    def launcher(file, name, dtype, count, args):
        xp.launched.append((file, name))
        shim.launch(file, name, dtype, count, args)

    monkeypatch.setattr(kernels, "launcher", launcher)
    for key, value in (("gpu", False), ("cupy", xp)):
        monkeypatch.setitem(backend._state, key, value)
    return xp
