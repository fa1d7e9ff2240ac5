"""The GPU running out of memory, told as the layer and batch size that did it.

Net calls ``reraise_oom(exc, net, layer)`` in the ``except`` branch around a
layer's setup, forward and backward: nothing runs unless an exception is on
its way, so the CPU path pays nothing. CuPy is never imported here; its errors
are known by class name and module, so this works (and is tested) without it.
"""
from ..errors import FirecaffeError

# CUDA libraries report a failed allocation in their own words.
_ALLOCATION_FAILED = ("cudaErrorMemoryAllocation", "CUBLAS_STATUS_ALLOC_FAILED",
                      "CUDNN_STATUS_ALLOC_FAILED", "CUSOLVER_STATUS_ALLOC_FAILED",
                      "CUFFT_ALLOC_FAILED", "CURAND_STATUS_ALLOCATION_FAILED")


class OutOfGPUMemory(FirecaffeError):
    """A layer could not get the device memory it needs."""


def is_gpu_oom(exc):
    """Whether ``exc`` is CuPy (or a CUDA library under it) out of device memory."""
    cls = type(exc)
    if not (cls.__module__ or "").startswith("cupy"):
        return False
    return cls.__name__ == "OutOfMemoryError" or any(s in str(exc) for s in _ALLOCATION_FAILED)


def reraise_oom(exc, net, layer):
    """Raise OutOfGPUMemory naming ``layer`` if ``exc`` is a GPU out of memory; else return."""
    if not is_gpu_oom(exc):
        return
    batch = batch_per_rank(net, layer)
    per_rank = f" (batch {batch} per rank)" if batch else ""
    raise OutOfGPUMemory(f"out of GPU memory in layer '{layer.name}'{per_rank}: lower batch_size or use "
                         f"more ranks ({type(exc).__name__}: {exc})") from None


def batch_per_rank(net, layer):
    """The batch size of the net's first data or Input layer (or of ``layer``); None if unknown."""
    for candidate, top in zip(net.layers, net.top_vecs):
        if (getattr(candidate, "is_data", False) or candidate.type == "Input") and top and top[0].ndim:
            return int(top[0].shape[0])
    size = getattr(layer, "batch_size", None)
    return int(size) if size else None
