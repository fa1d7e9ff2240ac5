"""oneDNN primitives over NumPy arrays: memory descriptors, and a primitive
bound to the layouts of firecaffe's arrays (plain, C-contiguous float32).

A primitive may compute in the layout it prefers (its descriptors made with
``any``): then each argument whose layout differs from the array's gets a
buffer of the library's own and a reorder, run before (inputs) or after
(outputs) the primitive on every call; where the layouts match, the primitive
reads and writes the arrays themselves (their data pointer, no copy).
"""
import ctypes
from contextlib import contextmanager

import numpy as np

from . import api
from .api import call


def dims(values):
    return api.Dims(*[int(v) for v in values])


class MemoryDesc:
    """An owned dnnl_memory_desc_t: plain C-contiguous float32, ``any`` layout,
    ``transposed`` (a 2-D (rows, cols) view of a C-contiguous (cols, rows) array),
    ``nhwc``, ``nChw16c`` or ``nChw8c`` (4-D; channels in blocks of 16 or 8, the last padded)."""

    def __init__(self, shape, layout="plain"):
        self.handle = api.P()
        shape = tuple(int(s) for s in shape)
        if layout in ("any", "nChw16c", "nChw8c"):
            tag = {"any": api.FORMAT_ANY, "nChw16c": api.TAG_NCHW16C, "nChw8c": api.TAG_NCHW8C}[layout]
            call("dnnl_memory_desc_create_with_tag", ctypes.byref(self.handle), len(shape), dims(shape),
                 api.F32, tag)
        else:
            strides = {"plain": lambda: np.cumprod((1,) + shape[:0:-1])[::-1], "transposed": lambda: (1, shape[0]),
                       "nhwc": lambda: (np.prod(shape[1:]), 1, shape[3] * shape[1], shape[1])}[layout]()
            call("dnnl_memory_desc_create_with_strides", ctypes.byref(self.handle), len(shape), dims(shape),
                 api.F32, dims(strides))

    def __del__(self):
        if api.LIB is not None and self.handle:
            api.LIB.dnnl_memory_desc_destroy(self.handle)


@contextmanager
def post_ops_attr(post_ops):
    """Primitive attributes with ``post_ops``: ("binary", algorithm, MemoryDesc of the operand) and
    ("eltwise", algorithm, alpha, beta) entries, in order; None for none. oneDNN copies the
    attributes into the primitive descriptor: they are destroyed after."""
    if not post_ops:
        yield None
        return
    attr, ops = api.P(), api.P()
    call("dnnl_post_ops_create", ctypes.byref(ops))
    try:
        for kind, alg, *rest in post_ops:
            if kind == "binary":
                call("dnnl_post_ops_append_binary", ops, alg, rest[0].handle)
            else:
                call("dnnl_post_ops_append_eltwise", ops, alg, float(rest[0]), float(rest[1]))
        call("dnnl_primitive_attr_create", ctypes.byref(attr))
        try:
            call("dnnl_primitive_attr_set_post_ops", attr, ops)
            yield attr
        finally:
            api.LIB.dnnl_primitive_attr_destroy(attr)
    finally:
        api.LIB.dnnl_post_ops_destroy(ops)


def relu_post_ops(slope):
    """Caffe's ReLU of ``slope`` as post-ops (none for None): oneDNN's eltwise_relu, s > 0 ? s :
    slope * s, Caffe's rule for every slope, NaN included; for slope 0 a linear + 0 after it, since
    slope * s is -0 for s < 0 in some kernels where the ReLU layer gives +0."""
    if slope is None:
        return []
    return [("eltwise", api.ELTWISE_RELU, slope, 0.0)] + \
        ([("eltwise", api.ELTWISE_LINEAR, 1.0, 0.0)] if slope == 0 else [])


class PrimitiveDesc:
    """An owned dnnl_primitive_desc_t, made by ``create(pointer_to_handle)``."""

    def __init__(self, create):
        self.handle = api.P()
        create(ctypes.byref(self.handle))

    def md(self, arg):
        return api.LIB.dnnl_primitive_desc_query_md(self.handle, api.QUERY_EXEC_ARG_MD, arg)

    def impl(self):
        name = ctypes.c_char_p()
        call("dnnl_primitive_desc_query", self.handle, api.QUERY_IMPL_INFO_STR, 0, ctypes.byref(name))
        return name.value.decode()

    def __del__(self):
        if api.LIB is not None and self.handle:
            api.LIB.dnnl_primitive_desc_destroy(self.handle)


def _primitive(pd_handle):
    prim = api.P()
    call("dnnl_primitive_create", ctypes.byref(prim), pd_handle)
    return prim


def _memory(md, handle=None):
    mem = api.P()
    call("dnnl_memory_create", ctypes.byref(mem), md, api.ENGINE, handle)
    return mem


class _Reorder:
    def __init__(self, src_md, dst_md):
        pd = PrimitiveDesc(lambda out: call("dnnl_reorder_primitive_desc_create", out, src_md, api.ENGINE,
                                            dst_md, api.ENGINE, None))
        self.prim = _primitive(pd.handle)

    def run(self, src_mem, dst_mem):
        args = (api.ExecArg * 2)(api.ExecArg(api.ARG_FROM, src_mem), api.ExecArg(api.ARG_TO, dst_mem))
        call("dnnl_primitive_execute", self.prim, api.STREAM, 2, args)


class Primitive:
    """A primitive from ``pd`` whose arguments ``{arg: (MemoryDesc of the array, is_output)}``
    are NumPy arrays; call it with ``{arg: array}``."""

    def __init__(self, pd, args):
        self.pd = pd
        self.impl = pd.impl()
        self.prim = _primitive(pd.handle)
        self._user = {}       # arg -> memory over the caller's array
        self._inner = {}      # arg -> (library-owned memory, reorder, is_output) where the layouts differ
        self._keep = [desc for desc, _ in args.values()]
        self._sizes = {}      # arg -> bytes of the caller's array
        for arg, (desc, is_output) in args.items():
            self._user[arg] = _memory(desc.handle)
            self._sizes[arg] = api.LIB.dnnl_memory_desc_get_size(desc.handle)
            want = pd.md(arg)
            if not api.LIB.dnnl_memory_desc_equal(want, desc.handle):
                src, dst = (want, desc.handle) if is_output else (desc.handle, want)
                self._inner[arg] = (_memory(want, api.ALLOCATE), _Reorder(src, dst), is_output)
        self.reorders = len(self._inner)
        self._borrowed = {}   # arg -> own buffer set aside: another primitive's copy is read instead
        exec_mems = [self._inner[a][0] if a in self._inner else self._user[a] for a in args]
        self._args = (api.ExecArg * len(args))(*[api.ExecArg(a, m) for a, m in zip(args, exec_mems)])

    def reordered(self, arg, other):
        """Make ``other`` read input ``arg`` from this primitive's reordered copy, where
        both want it in one layout (True); the caller then passes ``ready=(arg,)``."""
        mine, theirs = self._inner.get(arg), other._inner.get(arg)
        if mine is None or theirs is None or not api.LIB.dnnl_memory_desc_equal(
                self.pd.md(arg), other.pd.md(arg)):
            return False
        if arg not in other._borrowed:
            other._inner[arg] = (mine[0], theirs[1], False)
            other._borrowed[arg] = theirs[0]
            for a in other._args:
                if a.arg == arg:
                    a.memory = mine[0]
        return True

    def __call__(self, arrays, ready=()):
        for arg, array in arrays.items():
            if (array.dtype != np.float32 and arg != api.ARG_WORKSPACE) or not array.flags.c_contiguous \
                    or array.nbytes != self._sizes[arg]:
                raise api.DnnlError(f"argument {arg} is not a C-contiguous float32 array of "
                                    f"{self._sizes[arg]} bytes ({array.dtype}, {array.shape})")
            call("dnnl_memory_set_data_handle", self._user[arg], array.ctypes.data)
        for arg, (mem, reorder, is_output) in self._inner.items():
            if not is_output and arg not in ready:
                reorder.run(self._user[arg], mem)
        call("dnnl_primitive_execute", self.prim, api.STREAM, len(self._args), self._args)
        for arg, (mem, reorder, is_output) in self._inner.items():
            if is_output:
                reorder.run(mem, self._user[arg])
        call("dnnl_stream_wait", api.STREAM)

    def bare(self):
        """A call of the primitive alone, on buffers of the library's own in the layouts it
        prefers (no reorder, no NumPy array): what oneDNN reaches by itself (benchmarks)."""
        mds = [self.pd.md(a.arg) for a in self._args]
        # filled buffers: uninitialized memory may hold denormals, which slow the kernels down
        arrays = [np.random.default_rng(0).uniform(-1, 1, -(-api.LIB.dnnl_memory_desc_get_size(md) // 4))
                  .astype(np.float32) for md in mds]
        mems = [_memory(md, a.ctypes.data) for md, a in zip(mds, arrays)]
        args = (api.ExecArg * len(mems))(*[api.ExecArg(a.arg, m) for a, m in zip(self._args, mems)])

        def run():
            call("dnnl_primitive_execute", self.prim, api.STREAM, len(mems), args)
            call("dnnl_stream_wait", api.STREAM)
        run.memories, run.arrays = mems, arrays
        return run

    def __del__(self):
        lib = api.LIB
        if lib is None:
            return
        for mem in self._user.values():
            lib.dnnl_memory_destroy(mem)
        for arg, (mem, reorder, _) in self._inner.items():
            lib.dnnl_memory_destroy(self._borrowed.get(arg, mem))
            lib.dnnl_primitive_destroy(reorder.prim)
        lib.dnnl_primitive_destroy(self.prim)
