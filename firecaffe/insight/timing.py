"""`firecaffe time`: per-layer forward/backward times, printed as `caffe time` does,
after the engine each layer runs on (oneDNN or NumPy on the CPU, CuPy on a GPU)."""
import time

from ..core import backend
from ..core.log import LOGGER
from ..engine import fusion


def _sync():
    if backend.gpu_enabled():
        backend.xp().cuda.Device().synchronize()


def engine_of(layer, net=None, i=None):
    """The engine a layer computes with: its own word (oneDNN layers) or its array module's;
    a ReLU that its convolution computes (engine/fusion.py) says 'fused into <conv>'."""
    if backend.gpu_enabled():
        return "CuPy"
    fused = fusion.engine_word(net, i) if net is not None else None
    return fused or getattr(layer, "engine_name", "NumPy")


def cpu_libraries():
    """The CPU math libraries in this process, as `firecaffe time` prints them: oneDNN's version
    and each BLAS with the kernels it runs (threadpoolctl), e.g. 'OpenBLAS 0.3.31 (SkylakeX
    kernels, 2 threads)'. OpenBLAS picks its kernels by CPU model at load, and OPENBLAS_CORETYPE
    overrides that: Haswell's on an AVX-512 machine halve its GEMM rate."""
    from ..ops import dnnl
    parts = [dnnl.VERSION if dnnl.AVAILABLE else "oneDNN not loaded"]
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "; ".join(parts)
    names = {"openblas": "OpenBLAS", "mkl": "MKL", "blis": "BLIS"}
    for info in threadpool_info():
        if info.get("internal_api") in names:
            name = " ".join(filter(None, (names[info["internal_api"]], info.get("version"))))
            kernels = f"{info['architecture']} kernels, " if info.get("architecture") else ""
            parts.append(f"{name} ({kernels}{info.get('num_threads')} threads)")
    return "; ".join(parts)


def time_net(net, iterations):
    """Time ``iterations`` forward-backward passes; return per-layer mean ms."""
    n = len(net.layers)
    fwd, bwd = [0.0] * n, [0.0] * n
    LOGGER.info("Performing Forward")
    net.forward_range()                       # warm-up, as Caffe does once
    LOGGER.info("Performing Backward")
    net.backward_range()
    for i, layer in enumerate(net.layers):    # after the warm-up: a layer oneDNN refused says NumPy
        LOGGER.info(f"{layer.name:>20s}\tengine: {engine_of(layer, net, i)}")
    if not backend.gpu_enabled():
        LOGGER.info(f"CPU libraries: {cpu_libraries()}")
    LOGGER.info("*** Benchmark begins ***")
    LOGGER.info(f"Testing for {iterations} iterations.")
    total_fwd = total_bwd = 0.0
    wall = time.perf_counter()
    for it in range(iterations):
        start = time.perf_counter()
        done = ()
        for i in range(n):
            t = time.perf_counter()      # a fused layer's time is in the row of the layer that computes it
            chain = net.chains.get(i)
            step = net.forward_layer(i, fused=i in done, relu_slope=net.relu_fusion.get(i), chain=chain)
            if step is None:
                done = chain or (i + 1,)
            _sync()
            fwd[i] += time.perf_counter() - t
        mid = time.perf_counter()
        done = set()
        for i in reversed(range(n)):
            t = time.perf_counter()
            if i in done:
                pass
            elif i in net.bottom_relu:          # ReLU backwards a Concat/Pooling computes: in its row
                done |= net.backward_with_relus(i, 0, net.bottom_need_backward)
            elif i in net.chain_tail:                 # a chain (BatchNorm, Eltwise): in its last layer's row
                done |= net.backward_chain(i, 0, always=True)
            else:
                net.backward_layer(i, always=True)   # as `caffe time`: every layer, loss or not
            _sync()
            bwd[i] += time.perf_counter() - t
        end = time.perf_counter()
        total_fwd += mid - start
        total_bwd += end - mid
        LOGGER.info(f"Iteration: {it + 1} forward-backward time: {(end - start) * 1e3:.4g} ms.")
    LOGGER.info("Average time per layer: ")
    for i, layer in enumerate(net.layers):
        LOGGER.info(f"{layer.name:>20s}\tforward: {fwd[i] / iterations * 1e3:.5g} ms.")
        LOGGER.info(f"{layer.name:>20s}\tbackward: {bwd[i] / iterations * 1e3:.5g} ms.")
    LOGGER.info(f"Average Forward pass: {total_fwd / iterations * 1e3:.5g} ms.")
    LOGGER.info(f"Average Backward pass: {total_bwd / iterations * 1e3:.5g} ms.")
    LOGGER.info(f"Average Forward-Backward: {(total_fwd + total_bwd) / iterations * 1e3:.5g} ms.")
    LOGGER.info(f"Total Time: {(time.perf_counter() - wall) * 1e3:.5g} ms.")
    LOGGER.info("*** Benchmark ends ***")
    return {layer.name: (fwd[i] / iterations * 1e3, bwd[i] / iterations * 1e3)
            for i, layer in enumerate(net.layers)}
