"""NCCL through ``cupy.cuda.nccl``: allreduce of CuPy arrays, GPU to GPU.

MPI is used once, to hand rank 0's NCCL unique id (128 bytes, broadcast as a
buffer) to the other ranks. Each call synchronizes the current stream before
(the gradient kernels are done) and after (the sum is in place when it returns).
NCCL runs rings inside and across nodes, so the cost formula is the ring's.
"""
import numpy as np

from ..errors import FirecaffeError
from .base import Strategy, check_flat
from .ring import RingAllreduce

UNIQUE_ID_BYTES = 128  # sizeof(ncclUniqueId), fixed by NCCL's ABI
NEEDS_GPU = "--comm nccl needs CuPy and an NVIDIA GPU on every rank (pip install 'firecaffe[gpu]')"


class NCCLAllreduce(Strategy):
    """One NCCL communicator over the ranks of ``comm``, each on its current CuPy device."""

    name = "nccl"
    order = 50
    needs_gpu = True
    own_waits = False           # NCCL's stream does the waiting
    factor_codecs = False
    codec_advice = "compressing NCCL's device-to-device allreduce is not built (it needs GPUs to test)"
    cost_coefficients = RingAllreduce.cost_coefficients
    busiest_rank = RingAllreduce.busiest_rank
    messages = RingAllreduce.messages

    def __init__(self, comm, **options):
        if options.get("codec") is not None:
            self.check_codec(options["codec"])          # before looking for a GPU: the clearer refusal
        super().__init__(comm, codec=options.get("codec"))
        try:
            import cupy
            from cupy.cuda import nccl
            if cupy.cuda.runtime.getDeviceCount() < 1:
                raise RuntimeError("no CUDA device")
        except Exception as exc:  # noqa: BLE001 - ImportError, or a CUDA driver/runtime that is missing
            raise FirecaffeError(f"{NEEDS_GPU}; rank {comm.Get_rank()}: {type(exc).__name__}: {exc}") from None
        self._cupy, self._nccl = cupy, nccl
        unique_id = np.zeros(UNIQUE_ID_BYTES, np.int8)
        if comm.Get_rank() == 0:
            unique_id[:] = nccl.get_unique_id()
        comm.Bcast(unique_id, root=0)
        self.nccl = nccl.NcclCommunicator(comm.Get_size(), tuple(int(b) for b in unique_id),
                                          comm.Get_rank())
        self._types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64}

    def allreduce_(self, flat, at=0):
        check_flat(flat)
        if not isinstance(flat, self._cupy.ndarray):
            raise TypeError(f"--comm nccl reduces CuPy arrays on the GPU, got {type(flat).__name__}")
        stream = self._cupy.cuda.get_current_stream()
        stream.synchronize()
        self.nccl.allReduce(flat.data.ptr, flat.data.ptr, flat.size, self._types[flat.dtype],
                            self._nccl.NCCL_SUM, stream.ptr)
        stream.synchronize()
