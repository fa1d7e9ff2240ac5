"""Loading oneDNN's libdnnl (C API, version 3) with ctypes: the library, its
CPU engine and stream, and the few entry points firecaffe calls.

Where the library comes from is decided here and nowhere else:
FIRECAFFE_DNNL_LIB names the file to load (``off`` or ``0``: do not load it,
the NumPy path runs everywhere); unset or empty, the ``libdnnl.so.3`` that the
``onednn-cpu-gomp`` wheel puts in ``<prefix>/lib``, then the system's.
Anything that goes wrong while loading (missing file, another major version,
a corrupt library, no engine) leaves ``LIB`` as None and ``REASON`` saying why.

Threads: the wheel's libdnnl runs on GNU OpenMP (libgomp). Loading it here, at
``import firecaffe``, puts libgomp in the process before firecaffe/run/parallel.py
shares the cores between ranks with threadpoolctl, which limits OpenMP's threads
together with OpenBLAS's; OMP_NUM_THREADS set by the user wins, as elsewhere.
OpenMP's idle threads sleep at once (OMP_WAIT_POLICY=passive, seen by libgomp
while it loads and taken out of the environment again, so that other OpenMP
runtimes and child processes do not inherit it; a value the user set wins):
GNU OpenMP's default spinning competed with OpenBLAS, NumPy's threads and the
other ranks for the cores, e.g. SqueezeNet-CIFAR batch 32 forward + backward
901 ms spinning against 194-264 ms passive on a loaded 2-core machine.
"""
import ctypes
import ctypes.util
import os
import sys

from ...core.options import read_environment

ENV_LIB = "FIRECAFFE_DNNL_LIB"
MAX_NDIMS = 12

# enum values of oneDNN 3.x (dnnl_types.h, dnnl_common_types.h)
F32 = 3
FORMAT_ANY = 1
TAG_NCHW16C = 78            # dnnl_aBcd16b: the layout oneDNN 3.2's convolutions pick on AVX-512 (tested)
TAG_NCHW8C = 102            # dnnl_aBcd8b: theirs on AVX2 (tested: tests/layers/test_pooling_dnnl.py)
CPU = 1
STREAM_IN_ORDER = 1
FORWARD_TRAINING = 64
CONVOLUTION_DIRECT = 0x1
POOLING_MAX, POOLING_AVG_INCLUDE_PADDING = 0x1ff, 0x2ff
LRN_ACROSS_CHANNELS, LRN_WITHIN_CHANNEL = 0xaff, 0xbff
BINARY_ADD, BINARY_MUL, BINARY_DIV, BINARY_SUB = 0x1fff0, 0x1fff1, 0x1fff4, 0x1fff5
ELTWISE_RELU, ELTWISE_LINEAR = 0x20, 0x26         # s > 0 ? s : alpha * s (a post-op of the convolution: ops/dnnl/conv.py)
QUERY_IMPL_INFO_STR = 8
QUERY_EXEC_ARG_MD = 255
ARG_SRC, ARG_DST, ARG_WEIGHTS, ARG_BIAS, ARG_WORKSPACE = 1, 17, 33, 41, 64
ARG_DIFF_SRC, ARG_DIFF_DST, ARG_DIFF_WEIGHTS, ARG_DIFF_BIAS = 129, 145, 161, 169
ARG_FROM, ARG_TO = ARG_SRC, ARG_DST
ARG_SRC_1 = 2


def post_op_arg(index, arg=ARG_SRC_1):
    """The argument of post-op ``index`` (DNNL_ARG_ATTR_MULTIPLE_POST_OP(index) | arg in oneDNN 3)."""
    return 32768 * (index + 1) | arg
ALLOCATE = ctypes.c_void_p(ctypes.c_size_t(-1).value)     # DNNL_MEMORY_ALLOCATE
STATUS = {1: "out of memory", 2: "invalid arguments", 3: "unimplemented", 4: "last implementation reached",
          5: "runtime error", 6: "not required", 7: "invalid graph", 8: "invalid graph op",
          9: "invalid shape", 10: "invalid data type"}

Dims = ctypes.c_int64 * MAX_NDIMS
P = ctypes.c_void_p


class DnnlError(RuntimeError):
    """A oneDNN call that did not return dnnl_success."""


class ExecArg(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_int), ("memory", P)]


class Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_int), ("minor", ctypes.c_int), ("patch", ctypes.c_int),
                ("hash", ctypes.c_char_p), ("cpu_runtime", ctypes.c_uint), ("gpu_runtime", ctypes.c_uint)]


# name -> argument types (all return dnnl_status_t unless listed in _RESTYPES)
_PROTOTYPES = {
    "dnnl_engine_create": [P, ctypes.c_int, ctypes.c_size_t],
    "dnnl_stream_create": [P, P, ctypes.c_uint],
    "dnnl_stream_wait": [P],
    "dnnl_memory_desc_create_with_strides": [P, ctypes.c_int, Dims, ctypes.c_int, Dims],
    "dnnl_memory_desc_create_with_tag": [P, ctypes.c_int, Dims, ctypes.c_int, ctypes.c_int],
    "dnnl_memory_desc_destroy": [P],
    "dnnl_memory_desc_equal": [P, P],
    "dnnl_memory_desc_get_size": [P],
    "dnnl_memory_create": [P, P, P, P],
    "dnnl_memory_set_data_handle": [P, P],
    "dnnl_memory_destroy": [P],
    "dnnl_primitive_desc_query": [P, ctypes.c_int, ctypes.c_int, P],
    "dnnl_primitive_desc_query_md": [P, ctypes.c_int, ctypes.c_int],
    "dnnl_primitive_desc_destroy": [P],
    "dnnl_primitive_create": [P, P],
    "dnnl_primitive_execute": [P, P, ctypes.c_int, ctypes.POINTER(ExecArg)],
    "dnnl_primitive_destroy": [P],
    "dnnl_reorder_primitive_desc_create": [P, P, P, P, P, P],
    "dnnl_post_ops_create": [P],
    "dnnl_post_ops_append_eltwise": [P, ctypes.c_int, ctypes.c_float, ctypes.c_float],
    "dnnl_post_ops_append_binary": [P, ctypes.c_int, P],
    "dnnl_post_ops_destroy": [P],
    "dnnl_primitive_attr_create": [P],
    "dnnl_primitive_attr_set_post_ops": [P, P],
    "dnnl_primitive_attr_destroy": [P],
    "dnnl_convolution_forward_primitive_desc_create":
        [P, P, ctypes.c_int, ctypes.c_int, P, P, P, P, Dims, Dims, Dims, Dims, P],
    "dnnl_convolution_backward_data_primitive_desc_create":
        [P, P, ctypes.c_int, P, P, P, Dims, Dims, Dims, Dims, P, P],
    "dnnl_convolution_backward_weights_primitive_desc_create":
        [P, P, ctypes.c_int, P, P, P, P, Dims, Dims, Dims, Dims, P, P],
    "dnnl_pooling_forward_primitive_desc_create":
        [P, P, ctypes.c_int, ctypes.c_int, P, P, Dims, Dims, Dims, Dims, Dims, P],
    "dnnl_pooling_backward_primitive_desc_create": [P, P, ctypes.c_int, P, P, Dims, Dims, Dims, Dims, Dims, P, P],
    "dnnl_binary_primitive_desc_create": [P, P, ctypes.c_int, P, P, P, P],
    "dnnl_inner_product_forward_primitive_desc_create": [P, P, ctypes.c_int, P, P, P, P, P],
    "dnnl_inner_product_backward_data_primitive_desc_create": [P, P, P, P, P, P, P],
    "dnnl_inner_product_backward_weights_primitive_desc_create": [P, P, P, P, P, P, P, P],
    "dnnl_lrn_forward_primitive_desc_create":
        [P, P, ctypes.c_int, ctypes.c_int, P, P, ctypes.c_int64, ctypes.c_float, ctypes.c_float, ctypes.c_float, P],
    "dnnl_lrn_backward_primitive_desc_create":
        [P, P, ctypes.c_int, P, P, P, ctypes.c_int64, ctypes.c_float, ctypes.c_float, ctypes.c_float, P, P],
}
_RESTYPES = {"dnnl_memory_desc_equal": ctypes.c_int, "dnnl_memory_desc_get_size": ctypes.c_size_t,
             "dnnl_primitive_desc_query_md": P}


def _candidates():
    chosen = (read_environment().dnnl_lib or "").strip()
    if chosen:
        return [] if chosen.lower() in ("0", "off", "no", "false") else [chosen]
    here = [os.path.join(sys.prefix, "lib", "libdnnl.so.3")]
    found = ctypes.util.find_library("dnnl")
    return here + ([found] if found else [])


def _load():
    """(library, engine, stream, version string, None) or (None, ..., reason)."""
    paths = _candidates()
    if not paths:
        return None, None, None, None, f"{ENV_LIB} turns oneDNN off"
    errors = []
    for path in paths:
        if not os.path.isabs(path) or os.path.exists(path):
            try:
                lib = _load_passive(path)
                break
            except OSError as exc:
                errors.append(str(exc).splitlines()[0])
        else:
            errors.append(f"{path}: no such file")
    else:
        return None, None, None, None, "cannot load libdnnl (" + "; ".join(errors) + ")"
    try:
        lib.dnnl_version.restype = ctypes.POINTER(Version)
        v = lib.dnnl_version().contents
        version = f"{v.major}.{v.minor}.{v.patch}"
        if v.major != 3:
            return None, None, None, None, f"{path} is oneDNN {version}; firecaffe needs version 3"
        for name, argtypes in _PROTOTYPES.items():
            fn = getattr(lib, name)
            fn.argtypes = argtypes
            fn.restype = _RESTYPES.get(name, ctypes.c_int)
        engine, stream = P(), P()
        _check(lib.dnnl_engine_create(ctypes.byref(engine), CPU, 0), "dnnl_engine_create")
        _check(lib.dnnl_stream_create(ctypes.byref(stream), engine, STREAM_IN_ORDER), "dnnl_stream_create")
    except (AttributeError, DnnlError, ValueError) as exc:
        return None, None, None, None, f"{path} is not a usable oneDNN 3 library ({exc})"
    return lib, engine, stream, f"oneDNN {version}", None


def _load_passive(path):
    """ctypes.CDLL(path), its libgomp starting with OMP_WAIT_POLICY=passive unless the user chose."""
    chosen = "OMP_WAIT_POLICY" in os.environ
    if not chosen:
        os.environ["OMP_WAIT_POLICY"] = "passive"
    try:
        return ctypes.CDLL(path)
    finally:
        if not chosen:
            del os.environ["OMP_WAIT_POLICY"]


def _check(status, what):
    if status:
        raise DnnlError(f"{what}: {STATUS.get(status, f'status {status}')}")


def call(name, *args):
    """Call ``name`` from libdnnl; a status other than success raises DnnlError."""
    _check(getattr(LIB, name)(*args), name)


LIB, ENGINE, STREAM, VERSION, REASON = _load()
