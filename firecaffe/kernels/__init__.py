"""CUDA kernels: the .cu sources in this folder, compiled on first use.

Each file defines ``extern "C"`` entry points with a ``_f32`` / ``_f64`` suffix
in grid-stride style, so any launch geometry covers every index (and the CPU
shim in tests/kernels runs them with one thread). ``#include "common.cuh"`` is
inlined here before compiling, so CuPy's on-disk cache key covers the header.
CuPy is imported only when a kernel is first asked for.

Every launch goes through ``launch``, which checks the index range and hands
the call to ``launcher``: CuPy by default; tests/kernels swap in the CPU shim
(one module-level name, so no layer or class is patched). This package knows
no layer: a kernel is a file name, an entry point and its arguments.
"""
import functools
import os

import numpy as np

KERNEL_DIR = os.path.dirname(os.path.abspath(__file__))
# Entry points per file; each exists with a _f32 and a _f64 suffix.
ENTRY_POINTS = {
    "im2col.cu": ("im2col", "col2im"),
    "pooling.cu": ("max_pool_forward", "max_pool_backward", "ave_pool_forward", "ave_pool_backward"),
    "lrn.cu": ("lrn_forward", "lrn_backward"),
    "softmax_loss.cu": ("softmax_loss_forward", "softmax_loss_backward"),
    "dropout.cu": ("dropout_forward",),
}
SOURCES = tuple(ENTRY_POINTS)
OPTIONS = ("-std=c++14",)
BLOCK = 256
MAX_BLOCKS = 65536          # the grid-stride loop covers the rest
MAX_INDEX = 2 ** 31 - 1     # kernels index with int


def source(file):
    """The text of ``file`` (name with or without .cu) with common.cuh inlined."""
    name = file if file.endswith(".cu") else file + ".cu"
    with open(os.path.join(KERNEL_DIR, name)) as f:
        text = f.read()
    with open(os.path.join(KERNEL_DIR, "common.cuh")) as f:
        common = f.read().replace("#pragma once", "")
    return text.replace('#include "common.cuh"', common)


@functools.lru_cache(maxsize=None)
def _module(file):
    import cupy
    return cupy.RawModule(code=source(file), options=OPTIONS)


@functools.lru_cache(maxsize=None)
def get_kernel(file, name):
    """The compiled kernel ``name`` from ``file`` (memoized)."""
    return _module(file).get_function(name)


def suffix(dtype):
    """Entry-point suffix for an array dtype: float32 -> 'f32', float64 -> 'f64'."""
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return "f32"
    if dtype == np.float64:
        return "f64"
    raise TypeError(f"GPU kernels take float32 or float64 arrays, got {dtype}")


def cupy_launcher(file, name, dtype, count, args):
    """Launch the compiled ``name_<suffix(dtype)>`` on the current CuPy stream."""
    kernel = get_kernel(file, f"{name}_{suffix(dtype)}")
    grid = min((count + BLOCK - 1) // BLOCK, MAX_BLOCKS)
    kernel((grid,), (BLOCK,), args)


launcher = cupy_launcher      # tests/kernels puts the CPU shim here


def launch(file, name, dtype, count, args):
    """Run kernel ``name_<suffix(dtype)>`` of ``file`` over ``count`` indices with ``args``."""
    if count <= 0:
        return
    if count > MAX_INDEX:
        raise ValueError(f"kernel {name}: {count} elements exceed the int index range")
    launcher(file, name, dtype, count, args)
