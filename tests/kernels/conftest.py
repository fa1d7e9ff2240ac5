"""The CPU shim: firecaffe/kernels/*.cu built with g++ (shim/cuda_shim.h makes a
launch one thread that walks every grid-stride index), loaded with ctypes.

``shim.launch`` has the signature of firecaffe.kernels.launch, so gpu_ops can be
run on NumPy arrays with its launches routed here (fixture ``ops_on_shim``).
"""
import ctypes
import os
import shutil
import subprocess
import types

import numpy as np
import pytest

import firecaffe.kernels as kernels

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
        if count <= 0:
            return
        function = getattr(self.libraries[file.replace(".cu", "")], f"{name}_{kernels.suffix(dtype)}")
        function.restype = None
        function(*(self._c_arg(a) for a in args))


@pytest.fixture(scope="session")
def shim(tmp_path_factory):
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("g++ is not installed: the CPU shim for the CUDA kernels cannot be built")
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


def _fake_cupy(uniform=None):
    """NumPy dressed as the few CuPy functions gpu_ops calls."""
    def random_sample(shape, dtype=np.float64):
        if uniform is not None:
            return np.asarray(uniform, dtype=dtype).reshape(shape).copy()
        return np.random.default_rng(0).random(shape, dtype=dtype)
    names = ("empty", "empty_like", "matmul", "ascontiguousarray", "asarray", "stack", "int32")
    return types.SimpleNamespace(**{n: getattr(np, n) for n in names}, asnumpy=np.asarray,
                                 random=types.SimpleNamespace(random_sample=random_sample))


@pytest.fixture
def ops_on_shim(shim, monkeypatch):
    """firecaffe.ops.gpu_ops with NumPy for CuPy and the shim for kernel launches."""
    import firecaffe.ops.gpu_ops as gpu_ops
    monkeypatch.setattr(gpu_ops, "_cupy", _fake_cupy)
    monkeypatch.setattr(gpu_ops, "launch", shim.launch)
    return gpu_ops


@pytest.fixture
def fake_cupy():
    """``fake_cupy(uniform)``: the stand-in CuPy whose random_sample returns ``uniform``."""
    return _fake_cupy
