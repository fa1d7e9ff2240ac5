"""caffe.coord_map: crop offsets that align FCN tops (checked against hand-worked
geometry and against the arithmetic of each layer)."""
import numpy as np
import pytest

from firecaffe import layers as L
from firecaffe.coord_map import coord_map_from_to, crop, UndefinedMapException


def test_padded_conv_is_cropped_back_onto_its_input():
    data = L.Input(shape=dict(dim=[1, 3, 20, 20]))
    conv = L.Convolution(data, kernel_size=3, pad=10, num_output=2)          # 38 x 38
    axis, a, b = coord_map_from_to(conv, data)
    assert axis == 1 and np.all(a == 1) and np.all(b == -9)
    cropped = crop(conv, data)
    proto = cropped.to_proto().layer[-1]
    assert proto.type == "Crop" and proto.crop_param.axis == 2 and list(proto.crop_param.offset) == [9]


def test_fcn32_style_score_upsampling_offset():
    # FCN-32s geometry in miniature: pad 100 on the first conv, stride-32 trunk, 64-wide deconvolution.
    data = L.Input(shape=dict(dim=[1, 3, 64, 64]))
    conv1 = L.Convolution(data, kernel_size=3, pad=100, num_output=4)
    pool = L.Pooling(conv1, kernel_size=32, stride=32)
    score = L.Convolution(pool, kernel_size=7, num_output=2)
    up = L.Deconvolution(score, convolution_param=dict(kernel_size=64, stride=32, num_output=2))
    axis, a, b = coord_map_from_to(up, data)
    # data x -> conv1 x + 99 -> pool (x + 99 - 15.5) / 32 -> score that - 3 -> up 32 * that + 31.5 = x + 19,
    # so data sits 19 pixels into up (FCN-32s's own offset is 19 too)
    assert axis == 1 and np.all(a == 1) and np.all(b == -19)
    assert list(crop(up, data).to_proto().layer[-1].crop_param.offset) == [19]


def test_layers_without_a_map_stop_the_walk():
    data = L.Input(shape=dict(dim=[1, 3, 8, 8]))
    ip = L.InnerProduct(data, num_output=2)
    with pytest.raises(RuntimeError, match="no common ancestor"):
        coord_map_from_to(ip, data)


def test_negative_offsets_are_refused_with_pycaffes_assertion_error():
    data = L.Input(shape=dict(dim=[1, 3, 8, 8]))
    conv = L.Convolution(data, kernel_size=5, num_output=2)                    # 4 x 4, inside data
    assert list(crop(data, conv).to_proto().layer[-1].crop_param.offset) == [2]
    with pytest.raises(AssertionError, match="negative offset"):
        crop(conv, data)
    assert UndefinedMapException.__name__ == "UndefinedMapException"


def test_scale_mismatch_is_refused_with_pycaffes_assertion_error():
    data = L.Input(shape=dict(dim=[1, 3, 8, 8]))
    pooled = L.Pooling(data, kernel_size=2, stride=2)                           # a = 1/2 against data
    with pytest.raises(AssertionError, match="scale mismatch"):
        crop(data, pooled)


@pytest.mark.skipif("Crop" not in __import__("firecaffe").layer_type_list(),
                    reason="the Crop layer comes with the math-layers branch of issue 15; runs once merged")
def test_the_crop_offset_realigns_a_padded_identity_convolution(tmp_path):
    import firecaffe as caffe
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 6, 7]))
    n.conv = L.Convolution(n.data, kernel_size=3, pad=10, num_output=1, bias_term=False)
    n.crop = crop(n.conv, n.data)
    path = tmp_path / "crop.prototxt"
    path.write_text(str(n.to_proto()))
    net = caffe.Net(str(path), caffe.TEST)
    kernel = np.zeros((1, 1, 3, 3), np.float32)
    kernel[0, 0, 1, 1] = 1                            # identity: conv[y] = data[y - 9]
    net.params["conv"][0].data[...] = kernel
    x = np.random.default_rng(0).random((1, 1, 6, 7)).astype(np.float32)
    np.testing.assert_array_equal(net.forward(data=x)["crop"], x)
