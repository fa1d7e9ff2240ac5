"""Crop, Tile, Im2col, SPP: gradients against finite differences, values
against direct computations, and Caffe's shapes."""
import numpy as np
import pytest

from firecaffe.engine.testing import check_gradient, make_layer
from firecaffe.errors import FirecaffeError


def data(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("param,expected", [
    ('', (slice(None), slice(None), slice(0, 3), slice(0, 2))),
    ('crop_param { axis: 1 offset: 1 }', (slice(None), slice(1, 3), slice(1, 4), slice(1, 3))),
    ('crop_param { axis: -2 offset: 2 offset: 0 }', (slice(None), slice(None), slice(2, 5), slice(0, 2))),
])
def test_crop_values_and_gradient(param, expected):
    x, reference = data((2, 4, 5, 4)), np.zeros((2, 2, 3, 2))
    layer, bottom, top = make_layer(f'type: "Crop" {param}', [x, reference])
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, x[expected])
    check_gradient(layer, bottom, top)           # the reference's gradient is zero


def test_crop_refuses_out_of_bounds_and_wrong_offset_count():
    with pytest.raises(FirecaffeError, match="out of bounds"):
        make_layer('type: "Crop" crop_param { offset: 3 }', [data((1, 1, 5, 5)), np.zeros((1, 1, 3, 3))])
    with pytest.raises(FirecaffeError, match="3 offsets"):
        make_layer('type: "Crop" crop_param { offset: 1 offset: 1 offset: 1 }',
                   [data((1, 1, 5, 5)), np.zeros((1, 1, 3, 3))])


@pytest.mark.parametrize("axis,tiles", [(1, 3), (0, 2), (-1, 2)])
def test_tile_values_and_gradient(axis, tiles):
    x = data((2, 3, 2))
    layer, bottom, top = make_layer(f'type: "Tile" tile_param {{ axis: {axis} tiles: {tiles} }}', [x])
    layer.forward(bottom, top)
    reps = [1] * 3
    reps[axis] = tiles
    np.testing.assert_array_equal(top[0].data, np.tile(x, reps))
    check_gradient(layer, bottom, top)


def test_tile_needs_tiles():
    with pytest.raises(FirecaffeError, match="tiles"):
        make_layer('type: "Tile"', [data((2, 3))])


def reference_im2col(x, k, pad, stride, dilation):
    n, c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    ho = (h + 2 * pad[0] - dilation[0] * (k[0] - 1) - 1) // stride[0] + 1
    wo = (w + 2 * pad[1] - dilation[1] * (k[1] - 1) - 1) // stride[1] + 1
    out = np.zeros((n, c, k[0], k[1], ho, wo))
    for i in range(k[0]):
        for j in range(k[1]):
            out[:, :, i, j] = padded[:, :, i * dilation[0]:i * dilation[0] + stride[0] * ho:stride[0],
                                     j * dilation[1]:j * dilation[1] + stride[1] * wo:stride[1]]
    return out.reshape(n, c * k[0] * k[1], ho, wo)


@pytest.mark.parametrize("param,k,pad,stride,dilation", [
    ('kernel_size: 3', (3, 3), (0, 0), (1, 1), (1, 1)),
    ('kernel_h: 2 kernel_w: 3 pad_h: 1 pad_w: 2 stride_h: 2 stride_w: 1', (2, 3), (1, 2), (2, 1), (1, 1)),
    ('kernel_size: 2 pad: 1 stride: 2 dilation: 2', (2, 2), (1, 1), (2, 2), (2, 2)),
])
def test_im2col_values_and_gradient(param, k, pad, stride, dilation):
    x = data((2, 3, 5, 6))
    layer, bottom, top = make_layer(f'type: "Im2col" convolution_param {{ {param} }}', [x])
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, reference_im2col(x, k, pad, stride, dilation))
    check_gradient(layer, bottom, top)


def test_im2col_on_three_spatial_axes():
    x = data((1, 2, 3, 4, 3))
    layer, bottom, top = make_layer('type: "Im2col" convolution_param { kernel_size: 2 stride: 1 pad: 1 }', [x])
    assert top[0].shape == (1, 16, 4, 5, 4)
    check_gradient(layer, bottom, top)


def test_spp_levels_pool_into_power_of_two_bins():
    x = data((2, 3, 5, 7))
    layer, bottom, top = make_layer('type: "SPP" spp_param { pyramid_height: 2 }', [x])
    assert top[0].shape == (2, 3 * (1 + 4))
    layer.forward(bottom, top)
    whole = x.max(axis=(2, 3))
    np.testing.assert_allclose(top[0].data[:, :3], whole)
    # level 1: kernel (3, 4), pad ((6 - 5 + 1) // 2, (8 - 7 + 1) // 2) = (1, 1), stride = kernel
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    bins = np.array([[padded[:, :, 3 * i:3 * i + 3, 4 * j:4 * j + 4].max(axis=(2, 3)) for j in range(2)]
                     for i in range(2)])                          # (2, 2, N, C)
    np.testing.assert_allclose(top[0].data[:, 3:], bins.transpose(2, 3, 0, 1).reshape(2, 12))


@pytest.mark.parametrize("param", ['pyramid_height: 3', 'pyramid_height: 2 pool: AVE', 'pyramid_height: 1'])
def test_spp_gradient(param):
    x = data((2, 2, 8, 7), seed=4)
    layer, bottom, top = make_layer(f'type: "SPP" spp_param {{ {param} }}', [x])
    check_gradient(layer, bottom, top)


def test_spp_level_whose_padding_reaches_the_kernel_is_refused():
    # 5 columns in 4 bins: kernel 2, padding (8 - 5 + 1) // 2 = 2; Caffe's Pooling refuses it too.
    with pytest.raises(FirecaffeError, match="pyramid level 2 of input"):
        make_layer('type: "SPP" spp_param { pyramid_height: 3 }', [data((1, 1, 8, 5))])


def test_spp_of_height_one_is_four_dimensional():
    layer, bottom, top = make_layer('type: "SPP" spp_param { pyramid_height: 1 pool: AVE }', [data((2, 3, 4, 4))])
    assert top[0].shape == (2, 3, 1, 1)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data[:, :, 0, 0], bottom[0].data.mean(axis=(2, 3)))


def test_spp_follows_a_new_input_size():
    layer, bottom, top = make_layer('type: "SPP" spp_param { pyramid_height: 2 }', [data((1, 2, 4, 4))])
    bottom[0].reshape((1, 2, 8, 6))
    bottom[0].data[...] = data((1, 2, 8, 6))
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    assert top[0].shape == (1, 10)
    np.testing.assert_allclose(top[0].data[:, :2], bottom[0].data.max(axis=(2, 3)))
