import numpy as np
import pytest

from firecaffe.errors import FirecaffeError
from firecaffe.engine.testing import check_gradient, make_layer

from tests import _required


def pool_text(params):
    return f'type: "Pooling" pooling_param {{ {params} }}'


def distinct(*shape, seed=0):
    """Random values without ties (so MAX has one winner per window)."""
    values = np.random.default_rng(seed).permutation(int(np.prod(shape))).reshape(shape)
    return values / values.size + 0.01 * np.random.default_rng(seed + 1).standard_normal(shape)


def pool(params, x, num_top=1):
    layer, bottom, top = make_layer(pool_text(params), [x], num_top=num_top)
    layer.forward(bottom, top)
    return layer, bottom, top


X4 = np.arange(16.0).reshape(1, 1, 4, 4)


def test_pooling_rounds_output_size_up():
    # (4 - 3) / 2 = 0.5 rounds up: 2 windows per axis, the last one clipped to the image
    _, _, top = pool("pool: MAX kernel_size: 3 stride: 2", X4)
    np.testing.assert_array_equal(top[0].data, [[[[10, 11], [14, 15]]]])


def test_pooling_round_mode_floor():
    _, _, top = pool("pool: MAX kernel_size: 3 stride: 2 round_mode: FLOOR", X4)
    np.testing.assert_array_equal(top[0].data, [[[[10]]]])


def test_max_pooling_with_pad_never_picks_padding_and_drops_window_starting_in_pad():
    x = -1.0 - np.arange(9.0).reshape(1, 1, 3, 3)      # all negative: padding (0) must not win
    _, _, top = pool("pool: MAX kernel_size: 2 stride: 2 pad: 1", x)
    # ceil((3 + 2 - 2) / 2) + 1 = 3, but the third window would start in the padding: 2
    np.testing.assert_array_equal(top[0].data, [[[[-1, -2], [-4, -5]]]])


def test_max_pooling_mask_top_is_caffe_index():
    x = np.array([[[[1., 5, 2], [0, 3, 9], [4, 8, 7]]]])
    _, _, top = pool("pool: MAX kernel_size: 2 stride: 1", x, num_top=2)
    np.testing.assert_array_equal(top[0].data, [[[[5, 9], [8, 9]]]])
    np.testing.assert_array_equal(top[1].data, [[[[1, 5], [7, 5]]]])


def test_max_pooling_ties_go_to_the_first_element():
    _, _, top = pool("pool: MAX kernel_size: 2 stride: 2", np.ones((1, 1, 2, 2)), num_top=2)
    assert top[1].data.ravel().tolist() == [0]


@pytest.mark.parametrize("engine", ["engine: CAFFE", ""])
def test_max_pooling_never_lets_a_nan_win(engine):
    """Caffe's max starts at float's lowest and an input must compare greater to take it: a NaN never
    wins its window (the maximum of the rest does, and gets the gradient), and a window of NaN alone
    keeps the lowest value with mask -1 (Caffe's backward then writes before the array: here the
    NumPy path routes nothing, oneDNN routes to the window's first cell)."""
    nan = np.nan
    x = np.array([[[[nan, 2., nan, nan], [1., 0., nan, nan]]]], np.float32)
    layer, bottom, top = make_layer(pool_text(f"pool: MAX kernel_size: 2 stride: 2 {engine}"), [x],
                                    dtype=np.float32, num_top=2 if engine else 1)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, [[[[2, np.finfo(np.float32).min]]]])
    top[0].diff[...] = [[[[3., 4.]]]]
    layer.backward(top, [True], bottom)
    assert bottom[0].diff[0, 0, 0, 1] == 3 and bottom[0].diff[0, 0, :, :2].sum() == 3
    if engine:
        np.testing.assert_array_equal(top[1].data, [[[[1, -1]]]])
        assert bottom[0].diff.sum() == 3


def test_ave_pooling_divides_by_window_clipped_to_padded_image():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    _, _, top = pool("pool: AVE kernel_size: 3 stride: 2 pad: 1", x)
    # windows start at -1, 1, 3; sizes min(start + 3, 4 + 1) - start = 3, 3, 2
    sums = np.array([[0 + 1 + 4 + 5, 1 + 2 + 3 + 5 + 6 + 7, 3 + 7],
                     [4 + 5 + 8 + 9 + 12 + 13, 5 + 6 + 7 + 9 + 10 + 11 + 13 + 14 + 15, 7 + 11 + 15],
                     [12 + 13, 13 + 14 + 15, 15]], dtype=float)
    sizes = np.outer([3, 3, 2], [3, 3, 2])
    np.testing.assert_allclose(top[0].data[0, 0], sums / sizes)


def test_ave_pooling_without_pad_divides_by_clipped_window():
    _, _, top = pool("pool: AVE kernel_size: 3 stride: 2", X4)
    # second window per axis starts at 2 and is clipped to 2 cells
    np.testing.assert_allclose(top[0].data[0, 0], [[45 / 9, (2 + 3 + 6 + 7 + 10 + 11) / 6],
                                                         [(8 + 9 + 10 + 12 + 13 + 14) / 6, 50 / 4]])


def test_global_pooling_uses_whole_input():
    x = distinct(2, 3, 4, 5)
    _, _, top = pool("pool: AVE global_pooling: true", x)
    np.testing.assert_allclose(top[0].data, x.mean(axis=(2, 3), keepdims=True))
    _, _, top = pool("pool: MAX global_pooling: true", x)
    np.testing.assert_allclose(top[0].data, x.max(axis=(2, 3), keepdims=True))


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("geometry", ["kernel_size: 3 stride: 2", "kernel_size: 3 stride: 2 pad: 1",
                                      "kernel_size: 2 stride: 2 pad: 1", "kernel_h: 3 kernel_w: 2 stride_h: 1 "
                                      "stride_w: 2 pad_h: 1"])
def test_pooling_matches_torch_ceil_mode(method, geometry):
    torch = _required.torch()
    x = distinct(2, 3, 7, 6)
    layer, _, top = pool(f"pool: {method} {geometry}", x)
    fn = torch.nn.functional.max_pool2d if method == "MAX" else torch.nn.functional.avg_pool2d
    expect = fn(torch.tensor(x), layer.kernel, layer.stride, layer.pad, ceil_mode=True)
    np.testing.assert_allclose(top[0].data, expect.numpy(), rtol=1e-12)


@pytest.mark.parametrize("params", [
    "pool: MAX kernel_size: 3 stride: 2",
    "pool: MAX kernel_size: 3 stride: 2 pad: 1",
    "pool: MAX kernel_h: 2 kernel_w: 3 stride: 2 pad_h: 1 pad_w: 0",
    "pool: AVE kernel_size: 3 stride: 2",
    "pool: AVE kernel_size: 3 stride: 2 pad: 1",
    "pool: AVE kernel_size: 2 stride: 1 pad: 1",
    "pool: MAX global_pooling: true",
    "pool: AVE global_pooling: true",
])
def test_pooling_gradient(params):
    layer, bottom, top = make_layer(pool_text(params), [distinct(2, 2, 5, 6)])
    check_gradient(layer, bottom, top)


def test_max_pooling_gradient_with_mask_top():
    layer, bottom, top = make_layer(pool_text("pool: MAX kernel_size: 3 stride: 2 pad: 1"),
                                    [distinct(1, 2, 5, 5)], num_top=2)
    check_gradient(layer, bottom, top, top_weights=[np.ones(top[0].shape), np.zeros(top[1].shape)])


def test_pooling_flops():
    layer, bottom, top = pool("pool: MAX kernel_size: 3 stride: 2", np.zeros((2, 3, 7, 7)))
    assert layer.flops(bottom, top) == 2 * 3 * 3 * 3 * 9


@pytest.mark.parametrize("params, shape, words", [
    ("pool: STOCHASTIC kernel_size: 2", (1, 1, 4, 4), "not supported"),
    ("pool: MAX", (1, 1, 4, 4), "kernel_size"),
    ("pool: MAX kernel_h: 2", (1, 1, 4, 4), "kernel_size"),
    ("pool: MAX kernel_size: 2 kernel_h: 2 kernel_w: 2", (1, 1, 4, 4), "kernel_size"),
    ("pool: MAX kernel_size: 0", (1, 1, 4, 4), "kernel size"),
    ("pool: MAX kernel_size: 2 pad: 2", (1, 1, 4, 4), "smaller than the kernel"),
    ("pool: AVE global_pooling: true kernel_size: 2", (1, 1, 4, 4), "global_pooling"),
    ("pool: AVE global_pooling: true stride: 2", (1, 1, 4, 4), "stride 1"),
    ("pool: MAX kernel_size: 5", (1, 1, 4, 4), "do not fit"),
    ("pool: MAX kernel_size: 2", (1, 4, 4), "4 axes"),
])
def test_pooling_rejects_bad_parameters(params, shape, words):
    with pytest.raises(FirecaffeError, match="layer 'test'") as info:
        make_layer(pool_text(params), [np.zeros(shape)])
    assert words in str(info.value)


def test_ave_pooling_has_no_mask_top():
    with pytest.raises(FirecaffeError, match="second top"):
        make_layer(pool_text("pool: AVE kernel_size: 2"), [np.zeros((1, 1, 4, 4))], num_top=2)


def test_max_pooling_threaded_path_keeps_first_max_and_routes_gradient_to_it():
    # > 1 MiB of input takes the threaded, sample-by-sample path; rounding makes many ties
    x = np.round(np.random.default_rng(3).standard_normal((4, 8, 91, 91)) * 2).astype(np.float32)
    layer, bottom, top = make_layer(pool_text("pool: MAX kernel_size: 3 stride: 2 pad: 1"), [x],
                                    num_top=2, dtype=np.float32)
    layer.forward(bottom, top)
    ho, wo = top[0].shape[2:]
    padded = np.pad(x, ((0, 0), (0, 0), (1, 3), (1, 3)), constant_values=-np.inf)
    best, where = np.full(top[0].shape, -np.inf, np.float32), np.zeros(top[0].shape, np.int64)
    for i in range(3):
        for j in range(3):
            window = padded[:, :, i:i + 2 * ho:2, j:j + 2 * wo:2]
            better = window > best
            index = ((np.arange(ho) * 2 - 1)[:, None] + i) * 91 + (np.arange(wo) * 2 - 1)[None, :] + j
            best[better] = window[better]
            where[better] = np.broadcast_to(index, where.shape)[better]
    np.testing.assert_array_equal(top[0].data, best)
    np.testing.assert_array_equal(top[1].data, where)
    top[0].diff[...] = np.random.default_rng(4).standard_normal(top[0].shape)
    layer.backward(top, [True], bottom)
    expect = np.zeros(x.size)
    planes = (np.arange(4 * 8) * 91 * 91)[:, None]
    np.add.at(expect, (where.reshape(32, -1) + planes).ravel(), top[0].diff.ravel())
    np.testing.assert_allclose(bottom[0].diff.ravel(), expect, rtol=1e-5, atol=1e-6)
