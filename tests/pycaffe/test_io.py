"""caffe.io: Transformer, image loading and resizing, oversampling, and the
array <-> BlobProto / Datum conversions."""
import numpy as np
import pytest
from PIL import Image

from firecaffe import io
from firecaffe.errors import FirecaffeError


def make_transformer():
    t = io.Transformer({"data": (1, 3, 4, 6)})
    t.set_transpose("data", (2, 0, 1))
    t.set_channel_swap("data", (2, 1, 0))
    t.set_raw_scale("data", 255)
    t.set_mean("data", np.array([10.0, 20.0, 30.0]))
    t.set_input_scale("data", 0.5)
    return t


def test_preprocess_applies_each_step_in_pycaffes_order():
    image = np.random.default_rng(0).random((4, 6, 3)).astype(np.float32)
    out = make_transformer().preprocess("data", image)
    expected = (image.transpose(2, 0, 1)[[2, 1, 0]] * 255 - np.array([10, 20, 30])[:, None, None]) * 0.5
    assert out.shape == (3, 4, 6) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_deprocess_undoes_preprocess():
    image = np.random.default_rng(1).random((4, 6, 3)).astype(np.float32)
    t = make_transformer()
    np.testing.assert_allclose(t.deprocess("data", t.preprocess("data", image)), image, atol=1e-5)


def test_preprocess_resizes_to_the_input_size():
    t = io.Transformer({"data": (1, 3, 4, 6)})
    t.set_transpose("data", (2, 0, 1))
    assert t.preprocess("data", np.ones((8, 12, 3))).shape == (3, 4, 6)


def test_setters_check_shapes_and_names():
    t = io.Transformer({"data": (1, 3, 4, 6)})
    with pytest.raises(FirecaffeError, match="not one of the net inputs"):
        t.set_raw_scale("image", 255)
    with pytest.raises(FirecaffeError, match="needs 3 channels"):
        t.set_channel_swap("data", (1, 0))
    with pytest.raises(FirecaffeError, match="mean has 2 values"):
        t.set_mean("data", np.zeros(2))
    t.set_mean("data", np.ones((3, 8, 12)))          # a mean image of another size is resized
    assert t.mean["data"].shape == (3, 4, 6)


def test_load_image_gives_rgb_floats_in_0_1(tmp_path):
    pixels = np.zeros((5, 7, 3), np.uint8)
    pixels[..., 0] = 255                     # red
    Image.fromarray(pixels).save(tmp_path / "red.png")
    img = io.load_image(str(tmp_path / "red.png"))
    assert img.shape == (5, 7, 3) and img.dtype == np.float32
    np.testing.assert_allclose(img[0, 0], [1, 0, 0])
    assert io.load_image(str(tmp_path / "red.png"), color=False).shape == (5, 7, 1)


def test_resize_image_bilinear_keeps_constants_and_linear_ramps():
    assert np.allclose(io.resize_image(np.full((4, 4, 3), 7.0), (9, 5)), 7.0)
    ramp = np.tile(np.arange(8, dtype=np.float32), (2, 1))[:, :, None]     # x = 0..7
    half = io.resize_image(ramp, (2, 4))
    np.testing.assert_allclose(half[0, :, 0], [0.5, 2.5, 4.5, 6.5])          # pixel-centre sampling
    assert io.resize_image(ramp, (2, 4), interp_order=0).shape == (2, 4, 1)


def test_oversample_gives_corners_centre_and_mirrors():
    image = np.arange(6 * 8, dtype=np.float32).reshape(6, 8, 1)
    crops = io.oversample([image], (4, 4))
    assert crops.shape == (10, 4, 4, 1)
    np.testing.assert_array_equal(crops[0], image[:4, :4])
    np.testing.assert_array_equal(crops[3], image[2:, 4:])
    np.testing.assert_array_equal(crops[4], image[1:5, 2:6])
    np.testing.assert_array_equal(crops[5], image[:4, :4][:, ::-1])


def test_blobproto_and_vector_round_trip():
    arr = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    blob = io.array_to_blobproto(arr, diff=-arr)
    np.testing.assert_array_equal(io.blobproto_to_array(blob), arr)
    np.testing.assert_array_equal(io.blobproto_to_array(blob, return_diff=True), -arr)
    arrays = io.blobprotovector_str_to_arraylist(io.arraylist_to_blobprotovector_str([arr, arr[0]]))
    assert [a.shape for a in arrays] == [(2, 3, 4), (3, 4)]


def test_legacy_4d_blobproto_shape():
    from firecaffe.proto import caffe_pb2
    blob = caffe_pb2.BlobProto(num=1, channels=2, height=1, width=3, data=range(6))
    assert io.blobproto_to_array(blob).shape == (1, 2, 1, 3)


def test_datum_round_trip_bytes_and_floats():
    pixels = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    datum = io.array_to_datum(pixels, label=7)
    assert datum.label == 7 and len(datum.data) == 24
    np.testing.assert_array_equal(io.datum_to_array(datum), pixels)
    floats = pixels.astype(np.float64) / 3
    np.testing.assert_allclose(io.datum_to_array(io.array_to_datum(floats)), floats)
    with pytest.raises(ValueError, match="3-D"):
        io.array_to_datum(np.zeros((2, 2)))
