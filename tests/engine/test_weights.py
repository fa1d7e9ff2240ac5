"""Weights move between nets and files: .caffemodel and Caffe's HDF5 layout, bit for bit."""
import h5py
import numpy as np
import pytest
from google.protobuf import text_format

import firecaffe
from firecaffe.errors import PrototxtError
from firecaffe.proto import caffe_pb2, io

NET = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 6 dim: 6 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } bias_filler { type: "uniform" } } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
layer { name: "scale" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""


def write_net(tmp_path, text=NET):
    path = tmp_path / "net.prototxt"
    path.write_text(text)
    return str(path)


def randomized(path):
    net = firecaffe.Net(path, phase=firecaffe.TEST)
    gen = np.random.default_rng(7)
    for blobs in net.params.values():
        for blob in blobs:
            blob.data[...] = gen.standard_normal(blob.shape)
    net.params["bn"][2].data[...] = 1.0
    net.params["bn"][1].data[...] = np.abs(net.params["bn"][1].data)
    return net


@pytest.mark.parametrize("suffix", [".caffemodel", ".caffemodel.h5"])
def test_saved_weights_reload_bit_identical(tmp_path, suffix):
    path = write_net(tmp_path)
    net = randomized(path)
    weights = str(tmp_path / ("w" + suffix))
    net.save(weights)
    other = firecaffe.Net(path, weights, firecaffe.TEST)
    np.testing.assert_array_equal(other.param_arena, net.param_arena)
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6))
    np.testing.assert_array_equal(other.forward(data=x)["prob"], net.forward(data=x)["prob"])


def test_caffemodel_bytes_are_stable_across_save_and_reload(tmp_path):
    path = write_net(tmp_path)
    net = randomized(path)
    first, second = str(tmp_path / "a.caffemodel"), str(tmp_path / "b.caffemodel")
    net.save(first)
    firecaffe.Net(path, first, "TEST").save(second)
    assert open(first, "rb").read() == open(second, "rb").read()


def test_hdf5_weights_use_caffes_layout(tmp_path):
    path = write_net(tmp_path)
    net = randomized(path)
    weights = str(tmp_path / "w.caffemodel.h5")
    net.save(weights)
    with h5py.File(weights, "r") as f:
        np.testing.assert_array_equal(f["data/conv/0"][()], net.params["conv"][0].data)
        assert set(f["data/bn"].keys()) == {"0", "1", "2"}


def test_caffemodel_holds_a_netparameter_with_layer_blobs(tmp_path):
    path = write_net(tmp_path)
    net = randomized(path)
    weights = str(tmp_path / "w.caffemodel")
    net.save(weights)
    proto = io.read_caffemodel(weights)
    layer = next(lp for lp in proto.layer if lp.name == "fc")
    assert list(layer.blobs[0].shape.dim) == [5, 4 * 4 * 4]
    np.testing.assert_array_equal(io.blob_to_array(layer.blobs[1]), net.params["fc"][1].data)


def test_weights_of_another_shape_are_refused_with_both_shapes(tmp_path):
    path = write_net(tmp_path)
    weights = str(tmp_path / "w.caffemodel")
    randomized(path).save(weights)
    other = write_net(tmp_path, NET.replace("num_output: 5", "num_output: 7"))
    with pytest.raises(PrototxtError, match=r"layer 'fc'.*5 64.*7 64"):
        firecaffe.Net(other, weights, "TEST")


def test_pycaffe_api_shapes():
    param = text_format.Parse(NET, caffe_pb2.NetParameter())
    net = firecaffe.Net(param, phase="TEST")
    assert net.inputs == ["data"] and net.outputs == ["prob"]
    assert list(net.params) == ["conv", "bn", "scale", "fc"]
    assert [layer.type for layer in net.layers][:2] == ["Input", "Convolution"]
    assert net.blobs["prob"].data.shape == (2, 5)
    out = net.forward(data=np.ones((2, 3, 6, 6)))
    np.testing.assert_allclose(out["prob"].sum(axis=1), 1.0, rtol=1e-6)
    grads = net.backward(prob=np.ones((2, 5)))
    assert grads["data"].shape == (2, 3, 6, 6)


PRELU_NET = """
name: "shared"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 1 dim: 2 } } }
layer { name: "prelu" type: "PReLU" bottom: "data" top: "out" prelu_param { channel_shared: true } }
"""


def test_a_caffemodel_with_a_channel_shared_prelu_slope_loads(tmp_path):
    # Caffe's Blob::ToProto writes a 0-D blob as its one value and no shape at all; these are
    # those bytes, written by hand: NetParameter.layer (100) { name (1), type (2), blobs (7) { data (5) } }
    import struct
    blob = b"\x2a\x04" + struct.pack("<f", 0.375)                       # packed float data [0.375]
    layer = b"\x0a\x05prelu" + b"\x12\x05PReLU" + b"\x3a" + bytes([len(blob)]) + blob
    path = tmp_path / "caffe.caffemodel"
    path.write_bytes(b"\xa2\x06" + bytes([len(layer)]) + layer)
    net = firecaffe.Net(write_net(tmp_path, PRELU_NET), str(path), firecaffe.TEST)
    assert net.params["prelu"][0].data.shape == () and float(net.params["prelu"][0].data) == 0.375
    out = net.forward(data=np.array([[[[-2.0, 3.0]], [[-4.0, 0.5]]]], np.float32))["out"]
    np.testing.assert_array_equal(out.ravel(), [-0.75, 3.0, -1.5, 0.5])
    net.save(str(tmp_path / "again.caffemodel"))                        # and firecaffe's own file reloads
    again = firecaffe.Net(write_net(tmp_path, PRELU_NET), str(tmp_path / "again.caffemodel"), firecaffe.TEST)
    assert float(again.params["prelu"][0].data) == 0.375


SLASHED = NET.replace('name: "conv"', 'name: "fire2/squeeze1x1"').replace('name: "fc"', 'name: "fire2/expand/3x3"')


def test_layer_names_with_a_slash_survive_hdf5(tmp_path):
    """SqueezeNet names layers 'fire2/squeeze1x1': HDF5 stores it at data/fire2/squeeze1x1/<k> (a name
    cannot hold '/'); it reads back bit for bit, by name, also as h5py's path lookup finds it."""
    path = write_net(tmp_path, SLASHED)
    net = randomized(path)
    weights = str(tmp_path / "w.caffemodel.h5")
    net.save(weights)
    with h5py.File(weights, "r") as f:
        np.testing.assert_array_equal(f["data"]["fire2/squeeze1x1"]["0"][()], net.params["fire2/squeeze1x1"][0].data)
        assert sorted(f["data"]) == ["bn", "data", "fire2", "prob", "relu", "scale"]
    back = firecaffe.Net(path, firecaffe.TEST, weights=weights)
    for name, blobs in net.params.items():
        for mine, theirs in zip(blobs, back.params[name]):
            np.testing.assert_array_equal(mine.data, theirs.data)


def test_caffe_layout_hdf5_weights_read_by_name(tmp_path):
    """A file in Caffe's layout written independently (flat groups, empty groups for layers without
    weights, an extra layer the net lacks) loads by name."""
    path = write_net(tmp_path)
    net = randomized(path)
    weights = str(tmp_path / "caffe.h5")
    with h5py.File(weights, "w") as f:
        data = f.create_group("data")
        for name in ["data", "conv", "bn", "scale", "relu", "fc", "prob", "not_in_the_net"]:
            g = data.create_group(name)
            for k, blob in enumerate(net.params[name] if name in net.params else []):
                g.create_dataset(str(k), data=blob.data)
    back = firecaffe.Net(path, firecaffe.TEST, weights=weights)
    np.testing.assert_array_equal(back.params["fc"][0].data, net.params["fc"][0].data)


@pytest.mark.parametrize("name", ["/lead", "trail/", "a//b", "a/./b"])
def test_a_layer_name_hdf5_cannot_give_back_is_refused_naming_it(tmp_path, name):
    net = firecaffe.Net(write_net(tmp_path, NET.replace('name: "fc"', f'name: "{name}"')), firecaffe.TEST)
    with pytest.raises(PrototxtError, match=f"layer name '{name}' cannot be stored"):
        net.save(str(tmp_path / "w.caffemodel.h5"))
    assert not list(tmp_path.glob("*.h5")) and not list(tmp_path.glob(".*.tmp"))
