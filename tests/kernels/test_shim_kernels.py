"""The CUDA kernels, run on the CPU through the shim, against the NumPy path.

im2col/col2im are compared on host and "device" arrays directly; the layers run
twice: one twin in CPU mode on NumPy arrays (its forward_cpu/backward_cpu),
the other in GPU mode on the stand-in CuPy (its own forward_gpu/backward_gpu,
kernel launches routed to the shim), so each layer's GPU path, its argument
lists and geometry are checked, not only the kernels.
"""
import numpy as np
import pytest

from firecaffe.errors import DataError
from firecaffe.ops.im2col import col2im, im2col, out_size
from firecaffe.engine.testing import make_layer

DTYPES = [np.float64, np.float32]


def _tol(dtype):
    return dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)


def _twins(xp, text, bottoms, dtype, num_top=1, phase="TRAIN"):
    cpu = make_layer(text, bottoms, dtype=dtype, num_top=num_top, phase=phase)
    with xp.mode(gpu=True):
        gpu = make_layer(text, bottoms, dtype=dtype, num_top=num_top, phase=phase)
    for a, b in zip(cpu[0].blobs, gpu[0].blobs):
        b.data[...] = a.data
    return cpu, gpu


def _run_both(xp, cpu, gpu, seed=1, propagate=None, kernels=()):
    """Forward and backward on both twins with the same top diffs; compare everything.
    ``kernels``: entry points the GPU twin must have launched."""
    (lc, bc, tc), (lg, bg, tg) = cpu, gpu
    lc.forward(bc, tc)
    with xp.mode(gpu=True):
        lg.forward(bg, tg)
    gen = np.random.default_rng(seed)
    for a, b in zip(tc, tg):
        b.diff[...] = a.diff[...] = gen.standard_normal(a.shape)
    for layer in (lc, lg):
        for p in layer.blobs:
            p.diff[...] = 0
    propagate = propagate or [True] * len(bc)
    lc.backward(tc, propagate, bc)
    with xp.mode(gpu=True):
        lg.backward(tg, propagate, bg)
    tol = _tol(lc.dtype)
    for i, (a, b) in enumerate(zip(tc, tg)):
        assert isinstance(b.data, xp.ndarray), f"top[{i}] left the device"
        np.testing.assert_allclose(b.data, a.data, err_msg=f"top[{i}] data", **tol)
    for i, (a, b) in enumerate(zip(bc, bg)):
        if propagate[i]:
            assert isinstance(b.diff, xp.ndarray), f"bottom[{i}] diff left the device"
            np.testing.assert_allclose(b.diff, a.diff, err_msg=f"bottom[{i}] diff", **tol)
    for i, (a, b) in enumerate(zip(lc.blobs, lg.blobs)):
        np.testing.assert_allclose(b.diff, a.diff, err_msg=f"param[{i}] diff", **tol)
    launched = {name for _, name in xp.launched}
    assert set(kernels) <= launched, f"kernels not launched: {sorted(set(kernels) - launched)}"


# --- im2col / col2im -------------------------------------------------------------------
GEOMETRIES = [  # (N, C, H, W), kernel, pad, stride, dilation
    ((2, 3, 7, 6), (3, 3), (1, 1), (1, 1), (1, 1)),
    ((1, 2, 9, 8), (3, 2), (2, 0), (2, 3), (1, 1)),
    ((3, 2, 10, 9), (3, 3), (2, 1), (1, 2), (2, 3)),
    ((2, 4, 5, 5), (1, 1), (0, 0), (1, 1), (1, 1)),
    ((1, 1, 4, 11), (4, 5), (3, 4), (3, 2), (1, 1)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,kernel,pad,stride,dilation", GEOMETRIES)
def test_im2col_kernel_matches_numpy(shim_gpu, shape, kernel, pad, stride, dilation, dtype):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    out = tuple(out_size(*a) for a in zip(shape[2:], kernel, pad, stride, dilation))
    expected = im2col(x, kernel, pad, stride, dilation, out, batch_major=False)
    got = im2col(shim_gpu.asarray(x), kernel, pad, stride, dilation, out, batch_major=False)
    assert shim_gpu.launched == [("im2col", "im2col")]
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,kernel,pad,stride,dilation", GEOMETRIES)
def test_col2im_kernel_matches_numpy(shim_gpu, shape, kernel, pad, stride, dilation, dtype):
    out = tuple(out_size(*a) for a in zip(shape[2:], kernel, pad, stride, dilation))
    rows, cols = shape[1] * int(np.prod(kernel)), shape[0] * int(np.prod(out))
    col = np.random.default_rng(1).standard_normal((rows, cols)).astype(dtype)
    expected = col2im(col, shape, kernel, pad, stride, dilation, out, batch_major=False)
    got = col2im(shim_gpu.asarray(col), shape, kernel, pad, stride, dilation, out, batch_major=False,
                 out=shim_gpu.full(shape, np.nan, dtype=dtype))
    assert shim_gpu.launched == [("im2col", "col2im")]
    np.testing.assert_allclose(got, expected, **_tol(dtype))


def test_device_arrays_refuse_the_batch_major_layout(shim_gpu):
    x = shim_gpu.zeros((2, 1, 4, 4))
    with pytest.raises(ValueError, match=r"\(C\*K, N\*L\) columns"):
        im2col(x, (3, 3), (0, 0), (1, 1), (1, 1), (2, 2), batch_major=True)


# --- Convolution / Deconvolution -------------------------------------------------------------
CONVS = [
    ("num_output: 4 kernel_size: 3 pad: 1", (2, 3, 6, 5)),
    ("num_output: 6 kernel_size: 3 stride: 2 group: 3 pad: 2", (2, 3, 7, 7)),
    ("num_output: 4 kernel_h: 2 kernel_w: 3 stride_h: 2 stride_w: 1 pad_w: 1 dilation: 2", (3, 2, 8, 9)),
    ("num_output: 5 kernel_size: 1", (2, 4, 3, 4)),
    ("num_output: 4 kernel_size: 1 group: 2 bias_term: false", (2, 4, 3, 3)),
    ("num_output: 3 kernel_size: 3 stride: 2 pad: 1", (2, 2, 9)),          # 1-d
    ("num_output: 2 kernel_size: 2 pad: 1", (2, 2, 3, 4, 3)),              # 3-d: host columns
]
FILLERS = "weight_filler { type: 'gaussian' std: 0.5 } bias_filler { type: 'gaussian' std: 0.5 }"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["Convolution", "Deconvolution"])
@pytest.mark.parametrize("params,shape", CONVS)
def test_convolution_gpu_path_matches_cpu(shim_gpu, kind, params, shape, dtype):
    x = np.random.default_rng(2).standard_normal(shape)
    text = f"type: '{kind}' convolution_param {{ {params} {FILLERS} }}"
    cpu, gpu = _twins(shim_gpu, text, [x], dtype)
    two_d = len(shape) <= 4 and "kernel_size: 1" not in params
    _run_both(shim_gpu, cpu, gpu, kernels=("im2col", "col2im") if two_d else ())


@pytest.mark.parametrize("budget", [1, 200])
def test_convolution_in_batch_chunks_matches_cpu(shim_gpu, monkeypatch, budget):
    from firecaffe.ops import conv_base
    monkeypatch.setattr(conv_base, "COL_BUDGET", budget)     # one or a few samples per chunk
    x = np.random.default_rng(3).standard_normal((5, 2, 5, 5))
    for kind in ("Convolution", "Deconvolution"):
        text = f"type: '{kind}' convolution_param {{ num_output: 3 kernel_size: 3 pad: 1 {FILLERS} }}"
        cpu, gpu = _twins(shim_gpu, text, [x], np.float64)
        _run_both(shim_gpu, cpu, gpu, kernels=("im2col", "col2im"))


def test_convolution_with_two_bottoms_shares_weights(shim_gpu):
    gen = np.random.default_rng(4)
    xs = [gen.standard_normal((2, 2, 5, 4)) for _ in range(2)]
    text = (f"type: 'Convolution' bottom: 'a' bottom: 'b' top: 'c' top: 'd' "
            f"convolution_param {{ num_output: 3 kernel_size: 2 {FILLERS} }}")
    cpu, gpu = _twins(shim_gpu, text, xs, np.float64, num_top=2)
    _run_both(shim_gpu, cpu, gpu, kernels=("im2col", "col2im"))


# --- Pooling ---------------------------------------------------------------------------
POOLS = [
    ("kernel_size: 3 stride: 2", (2, 3, 7, 7)),
    ("kernel_size: 3 stride: 2", (1, 2, 8, 8)),                   # rounds up: a partial window
    ("kernel_size: 3 stride: 2 pad: 1", (2, 2, 6, 7)),
    ("kernel_h: 2 kernel_w: 3 stride_h: 1 stride_w: 2 pad_h: 1 pad_w: 2", (1, 3, 5, 8)),
    ("kernel_size: 2 stride: 3 round_mode: FLOOR", (2, 1, 8, 8)),
    ("global_pooling: true", (2, 3, 4, 5)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("params,shape", POOLS)
def test_pooling_gpu_path_matches_cpu(shim_gpu, method, params, shape, dtype):
    x = np.random.default_rng(5).standard_normal(shape)
    text = f"type: 'Pooling' pooling_param {{ pool: {method} {params} }}"
    cpu, gpu = _twins(shim_gpu, text, [x], dtype)
    m = method.lower()
    _run_both(shim_gpu, cpu, gpu, kernels=(f"{m}_pool_forward", f"{m}_pool_backward"))


def test_max_pooling_ties_pick_the_first_and_mask_top_matches(shim_gpu):
    x = np.round(np.random.default_rng(6).standard_normal((2, 2, 6, 6)))   # many ties
    text = "type: 'Pooling' top: 'p' top: 'mask' pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }"
    cpu, gpu = _twins(shim_gpu, text, [x], np.float64, num_top=2)
    _run_both(shim_gpu, cpu, gpu, kernels=("max_pool_forward", "max_pool_backward"))


@pytest.mark.parametrize("params,shape", POOLS[:4])
def test_max_pooling_keeps_one_argmax_encoding_on_both_paths(shim_gpu, params, shape):
    """The kernel offset of the first maximum in its window, as Caffe picks it."""
    x = np.round(2 * np.random.default_rng(11).standard_normal(shape))      # ties
    text = f"type: 'Pooling' pooling_param {{ pool: MAX {params} }}"
    cpu, gpu = _twins(shim_gpu, text, [x], np.float64)
    cpu[0].forward(cpu[1], cpu[2])
    with shim_gpu.mode(gpu=True):
        gpu[0].forward(gpu[1], gpu[2])
    np.testing.assert_array_equal(np.asarray(gpu[0].argmax), cpu[0].argmax)
    layer = cpu[0]
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.pad
    padded = np.pad(x, ((0, 0), (0, 0), (ph, kh), (pw, kw)), constant_values=-np.inf)
    for index in np.ndindex(*cpu[2][0].shape):
        n, c, oh, ow = index
        window = padded[n, c, oh * sh:oh * sh + kh, ow * sw:ow * sw + kw].reshape(-1)
        assert cpu[0].argmax[index] == int(np.argmax(window)), index


# --- LRN -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("params", [
    "local_size: 5 alpha: 0.5 beta: 0.75 k: 2",
    "local_size: 3 alpha: 2 beta: 0.6 k: 1",
    "local_size: 9 alpha: 1 beta: 0.75",                        # window wider than the channels
    "local_size: 3 alpha: 0.7 beta: 0.75 norm_region: WITHIN_CHANNEL",
])
def test_lrn_gpu_path_matches_cpu(shim_gpu, params, dtype):
    x = np.random.default_rng(7).standard_normal((2, 6, 4, 5))
    cpu, gpu = _twins(shim_gpu, f"type: 'LRN' lrn_param {{ {params} }}", [x], dtype)
    _run_both(shim_gpu, cpu, gpu, kernels=("lrn_forward", "lrn_backward"))


# --- SoftmaxWithLoss -----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss_param,spatial", [
    ("", ()),
    ("ignore_label: 2", (3, 2)),
    ("ignore_label: -1 normalization: FULL", (4,)),
    ("normalization: BATCH_SIZE", (2, 2)),
    ("ignore_label: 0 normalization: NONE", (3,)),
    ("normalize: false", (2,)),
])
def test_softmax_loss_gpu_path_matches_cpu(shim_gpu, loss_param, spatial, dtype):
    gen = np.random.default_rng(8)
    scores = 3 * gen.standard_normal((3, 5) + spatial)
    labels = gen.integers(0, 5, (3,) + spatial).astype(float)
    if "-1" in loss_param:
        labels.reshape(-1)[::3] = -1
    text = f"type: 'SoftmaxWithLoss' top: 'loss' top: 'prob' loss_param {{ {loss_param} }}"
    cpu, gpu = _twins(shim_gpu, text, [scores, labels], dtype, num_top=2)
    for layer, top in ((cpu[0], cpu[2]), (gpu[0], gpu[2])):
        top[0].diff[...] = 0.7        # a loss weight, as the net sets it
    _run_both(shim_gpu, cpu, gpu, propagate=[True, False],
              kernels=("softmax_loss_forward", "softmax_loss_backward"))


def test_softmax_loss_bad_label_is_a_data_error(shim_gpu):
    scores, labels = np.zeros((2, 3)), np.array([1.0, 3.0])
    with shim_gpu.mode(gpu=True):
        layer, bottom, top = make_layer("type: 'SoftmaxWithLoss'", [scores, labels])
        with pytest.raises(DataError, match="label 3 of sample 1 in the batch is outside the 3 classes"):
            layer.forward(bottom, top)
    assert shim_gpu.launched == [("softmax_loss", "softmax_loss_forward")]


# --- Dropout ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_kernel_keeps_units_at_or_above_the_ratio(shim_gpu, monkeypatch, dtype):
    gen = np.random.default_rng(9)
    x, uniform = gen.standard_normal((3, 4, 5)).astype(dtype), gen.random((3, 4, 5)).astype(dtype)
    with shim_gpu.mode(gpu=True):
        layer, bottom, top = make_layer("type: 'Dropout' dropout_param { dropout_ratio: 0.3 }", [x],
                                        dtype=dtype)
        uniform.reshape(-1)[0] = layer.ratio      # exactly the ratio: kept, as the CPU path keeps it
        monkeypatch.setattr(shim_gpu.random, "random_sample",
                            lambda shape, dtype: shim_gpu.asarray(uniform.reshape(shape)))
        layer.forward(bottom, top)
        mask = (uniform >= dtype(layer.ratio)) * dtype(layer.scale)
        assert mask.reshape(-1)[0] > 0
        assert shim_gpu.launched == [("dropout", "dropout_forward")]
        np.testing.assert_allclose(layer.mask, mask, **_tol(dtype))
        np.testing.assert_allclose(top[0].data, x * mask, **_tol(dtype))
        top[0].diff[...] = gen.standard_normal(x.shape)
        layer.backward(top, [True], bottom)
        assert isinstance(bottom[0].diff, shim_gpu.ndarray)
        np.testing.assert_allclose(bottom[0].diff, top[0].diff * mask, **_tol(dtype))


def test_dropout_at_test_time_is_the_identity(shim_gpu):
    x = np.random.default_rng(10).standard_normal((2, 3))
    with shim_gpu.mode(gpu=True):
        layer, bottom, top = make_layer("type: 'Dropout'", [x], phase="TEST")
        layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, x)
    assert shim_gpu.launched == []


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pooling_lets_no_nan_win_and_starts_at_caffes_lowest(shim_gpu, dtype):
    """Caffe's MAX starts at -FLT_MAX (in double too) and takes only a value that compares greater:
    a NaN never wins, and a window of NaN, -inf or values below -FLT_MAX keeps -FLT_MAX, mask -1."""
    nan, big = np.nan, -1e300 if dtype == np.float64 else -np.inf
    x = np.array([[[[nan, 2., nan, nan, big, -np.inf],
                    [1., 0., nan, nan, -np.inf, big]]]])
    text = "type: 'Pooling' top: 'p' top: 'mask' pooling_param { pool: MAX kernel_size: 2 stride: 2 engine: CAFFE }"
    cpu, gpu = _twins(shim_gpu, text, [x], dtype, num_top=2)
    _run_both(shim_gpu, cpu, gpu, kernels=("max_pool_forward", "max_pool_backward"))
    lowest = dtype(np.finfo(np.float32).min)
    np.testing.assert_array_equal(cpu[2][0].data, [[[[2, lowest, lowest]]]])
    np.testing.assert_array_equal(np.asarray(gpu[2][1].data), [[[[1, -1, -1]]]])
