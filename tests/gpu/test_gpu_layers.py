"""Every layer in GPU mode (CuPy arrays, the kernels of firecaffe/kernels) against
the NumPy path on the same random inputs: forward, backward, parameter gradients."""
import numpy as np
import pytest

from firecaffe.core import backend
from firecaffe.engine.testing import make_layer

pytestmark = pytest.mark.gpu

FILLERS = "weight_filler { type: 'gaussian' std: 0.5 } bias_filler { type: 'gaussian' std: 0.5 }"
CASES = [  # (layer text, bottom shapes, number of tops)
    (f"type: 'Convolution' convolution_param {{ num_output: 8 kernel_size: 3 pad: 1 {FILLERS} }}", [(4, 3, 12, 11)], 1),
    (f"type: 'Convolution' convolution_param {{ num_output: 6 kernel_size: 5 stride: 2 group: 3 {FILLERS} }}", [(3, 6, 15, 15)], 1),
    (f"type: 'Convolution' convolution_param {{ num_output: 4 kernel_size: 3 dilation: 2 pad: 2 {FILLERS} }}", [(2, 3, 9, 9)], 1),
    (f"type: 'Convolution' convolution_param {{ num_output: 16 kernel_size: 1 {FILLERS} }}", [(4, 8, 7, 7)], 1),
    (f"type: 'Convolution' convolution_param {{ num_output: 3 kernel_size: 3 {FILLERS} }}", [(2, 2, 11)], 1),
    (f"type: 'Convolution' convolution_param {{ num_output: 2 kernel_size: 2 {FILLERS} }}", [(2, 2, 4, 4, 4)], 1),
    (f"type: 'Deconvolution' convolution_param {{ num_output: 4 kernel_size: 4 stride: 2 pad: 1 {FILLERS} }}", [(2, 3, 6, 5)], 1),
    ("type: 'Pooling' pooling_param { pool: MAX kernel_size: 3 stride: 2 }", [(2, 3, 13, 13)], 1),
    ("type: 'Pooling' top: 'p' top: 'm' pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }", [(2, 3, 8, 9)], 2),
    ("type: 'Pooling' pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }", [(2, 3, 8, 8)], 1),
    ("type: 'Pooling' pooling_param { pool: AVE global_pooling: true }", [(2, 5, 6, 7)], 1),
    ("type: 'LRN' lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 }", [(2, 16, 6, 6)], 1),
    ("type: 'LRN' lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL }", [(2, 4, 6, 6)], 1),
    ("type: 'ReLU'", [(3, 4, 5)], 1),
    ("type: 'ReLU' relu_param { negative_slope: 0.1 }", [(3, 4, 5)], 1),
    ("type: 'Sigmoid'", [(3, 4, 5)], 1),
    ("type: 'TanH'", [(3, 4, 5)], 1),
    (f"type: 'InnerProduct' inner_product_param {{ num_output: 7 {FILLERS} }}", [(4, 3, 2, 2)], 1),
    ("type: 'BatchNorm'", [(4, 3, 5, 5)], 1),
    ("type: 'Scale' scale_param { bias_term: true filler { type: 'gaussian' } }", [(4, 3, 5, 5)], 1),
    ("type: 'Eltwise' bottom: 'a' bottom: 'b' eltwise_param { operation: PROD }", [(2, 3, 4), (2, 3, 4)], 1),
    ("type: 'Concat' bottom: 'a' bottom: 'b'", [(2, 3, 4), (2, 5, 4)], 1),
    ("type: 'Softmax'", [(4, 10, 3)], 1),
]
SOFTMAX_LOSS = "type: 'SoftmaxWithLoss' bottom: 's' bottom: 'l' loss_param { ignore_label: 1 }"


def _pair(cupy, text, arrays, num_top, dtype, phase="TRAIN"):
    cpu = make_layer(text, arrays, dtype=dtype, num_top=num_top, phase=phase)
    backend.set_mode_gpu(0)
    gpu = make_layer(text, [cupy.asarray(a) for a in arrays], dtype=dtype, num_top=num_top, phase=phase)
    for a, b in zip(cpu[0].blobs, gpu[0].blobs):
        b.data[...] = cupy.asarray(a.data)
    return cpu, gpu


def _forward_backward(layer, bottom, top, diffs, xp):
    layer.forward(bottom, top)
    for t, d in zip(top, diffs):
        t.diff[...] = xp.asarray(d)
    for p in layer.blobs:
        p.diff[...] = 0
    layer.backward(top, [True] * len(bottom), bottom)


def _compare(cupy, cpu, gpu, dtype):
    tol = dict(rtol=1e-9, atol=1e-11) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    (lc, bc, tc), (lg, bg, tg) = cpu, gpu
    for name, a, b in ([(f"top[{i}]", x.data, y.data) for i, (x, y) in enumerate(zip(tc, tg))]
                       + [(f"bottom[{i}] diff", x.diff, y.diff) for i, (x, y) in enumerate(zip(bc, bg))]
                       + [(f"param[{i}] diff", x.diff, y.diff) for i, (x, y) in enumerate(zip(lc.blobs, lg.blobs))]):
        assert isinstance(b, cupy.ndarray), f"{name} is not on the GPU"
        np.testing.assert_allclose(cupy.asnumpy(b), a, err_msg=f"{lc.type} {name}", **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("text,shapes,num_top", CASES, ids=[c[0][:60] for c in CASES])
def test_layer_on_gpu_matches_numpy(gpu, text, shapes, num_top, dtype):
    gen = np.random.default_rng(0)
    arrays = [gen.standard_normal(s) for s in shapes]
    backend.set_mode_cpu()
    cpu, gpu_layer = _pair(gpu, text, arrays, num_top, dtype)
    diffs = [gen.standard_normal(t.shape) for t in cpu[2]]
    backend.set_mode_cpu()
    _forward_backward(*cpu, diffs, np)
    backend.set_mode_gpu(0)
    _forward_backward(*gpu_layer, diffs, gpu)
    _compare(gpu, cpu, gpu_layer, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_loss_on_gpu_matches_numpy(gpu, dtype):
    gen = np.random.default_rng(1)
    scores, labels = 3 * gen.standard_normal((6, 5, 2)), gen.integers(0, 5, (6, 2)).astype(float)
    backend.set_mode_cpu()
    cpu, gpu_layer = _pair(gpu, SOFTMAX_LOSS, [scores, labels], 1, dtype)
    for (layer, bottom, top), xp, mode in ((cpu, np, backend.set_mode_cpu), (gpu_layer, gpu, lambda: backend.set_mode_gpu(0))):
        mode()
        layer.forward(bottom, top)
        top[0].diff[...] = 0.5
        layer.backward(top, [True, False], bottom)
    np.testing.assert_allclose(float(gpu_layer[2][0].data), float(cpu[2][0].data), rtol=1e-5)
    np.testing.assert_allclose(gpu.asnumpy(gpu_layer[1][0].diff), cpu[1][0].diff, rtol=1e-4, atol=1e-6)


def test_dropout_on_gpu_keeps_about_one_minus_ratio_scaled(gpu):
    x = np.random.default_rng(2).standard_normal((64, 1000)) + 5
    layer, bottom, top = make_layer("type: 'Dropout' dropout_param { dropout_ratio: 0.3 }", [gpu.asarray(x)],
                                    dtype=np.float32)
    layer.forward(bottom, top)
    y, mask = gpu.asnumpy(top[0].data), gpu.asnumpy(layer.mask)
    assert abs((mask > 0).mean() - 0.7) < 0.01
    np.testing.assert_allclose(y, x.astype(np.float32) * mask, rtol=1e-6)
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(gpu.asnumpy(bottom[0].diff), mask)


def test_every_kernel_compiles_with_nvrtc(cupy):
    import firecaffe.kernels as kernels
    for file, names in kernels.ENTRY_POINTS.items():
        for name in names:
            for suffix in ("f32", "f64"):
                kernels.get_kernel(file, f"{name}_{suffix}")


def test_max_pooling_keeps_the_cpu_argmax_encoding(gpu):
    x = np.round(2 * np.random.default_rng(3).standard_normal((2, 3, 9, 8)))     # ties
    text = "type: 'Pooling' pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }"
    backend.set_mode_cpu()
    cpu, gpu_layer = _pair(gpu, text, [x], 1, np.float64)
    backend.set_mode_cpu()
    cpu[0].forward(cpu[1], cpu[2])
    backend.set_mode_gpu(0)
    gpu_layer[0].forward(gpu_layer[1], gpu_layer[2])
    np.testing.assert_array_equal(gpu.asnumpy(gpu_layer[0].argmax), cpu[0].argmax)
