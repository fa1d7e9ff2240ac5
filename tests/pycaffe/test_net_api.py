"""pycaffe's Net API on firecaffe: constructors, blobs, forward/backward by name,
forward_all, names, weights in and out, sharing."""
import numpy as np
import pytest

import firecaffe as caffe
from firecaffe.errors import FirecaffeError

DEPLOY = """name: "small"
force_backward: true
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 1 dim: 5 dim: 5 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 3 kernel_size: 3 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


@pytest.fixture
def deploy(tmp_path):
    path = tmp_path / "deploy.prototxt"
    path.write_text(DEPLOY)
    return str(path)


@pytest.fixture
def weights(deploy, tmp_path):
    net = caffe.Net(deploy, caffe.TEST)
    path = str(tmp_path / "w.caffemodel")
    net.save(path)
    return path


def images(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 1, 5, 5)).astype(np.float32)


def test_phase_constants_are_caffe_pb2_ints_and_strings_work_too(deploy):
    assert (caffe.TRAIN, caffe.TEST) == (0, 1)
    assert caffe.Net(deploy, caffe.TRAIN).phase == "TRAIN"
    assert caffe.Net(deploy, "TEST").phase == "TEST"


def test_both_constructor_orders_load_weights(deploy, weights):
    reference = caffe.Net(deploy, weights, caffe.TEST).params["ip"][0].data
    for net in (caffe.Net(deploy, caffe.TEST, weights=weights),
                caffe.Net(deploy, weights=weights, phase=caffe.TEST),
                caffe.Net(deploy, weights, "TEST")):
        np.testing.assert_array_equal(net.params["ip"][0].data, reference)
    with pytest.raises(TypeError):
        caffe.Net(deploy, caffe.TEST, weights, 3)


def test_blob_reshape_takes_dims_and_net_reshape_follows(deploy):
    net = caffe.Net(deploy, caffe.TEST)
    net.blobs["data"].reshape(3, 1, 5, 5)
    net.reshape()
    assert net.blobs["conv"].data.shape == (3, 3, 3, 3)
    assert net.blobs["data"].num == 3 and net.blobs["data"].count == 75
    assert net.forward()["prob"].shape == (3, 4)


def test_forward_runs_from_start_to_end_and_returns_asked_blobs(deploy):
    net = caffe.Net(deploy, caffe.TEST)
    x = images(2)
    full = net.forward(data=x, blobs=["conv"])
    assert sorted(full) == ["conv", "prob"]
    prob = full["prob"].copy()
    net.blobs["prob"].data[...] = 0
    out = net.forward(start="ip")                 # conv unchanged: same result
    np.testing.assert_allclose(out["prob"], prob, rtol=1e-6)
    assert list(net.forward(end="relu")) == ["conv"]


def test_forward_checks_names(deploy):
    net = caffe.Net(deploy, caffe.TEST)
    with pytest.raises(FirecaffeError, match="'conv' is not a net input"):
        net.forward(conv=np.zeros((2, 3, 3, 3)))
    with pytest.raises(FirecaffeError, match="no layer named 'nope'"):
        net.forward(end="nope")


def test_backward_takes_output_diffs_and_returns_input_diffs(deploy):
    net = caffe.Net(deploy, caffe.TEST)
    net.forward(data=images(2))
    diff = np.zeros((2, 4), np.float32)
    diff[:, 2] = 1
    grads = net.backward(prob=diff, diffs=["conv"])
    assert sorted(grads) == ["conv", "data"] and np.abs(grads["data"]).max() > 0
    partial = net.backward(start="prob", end="ip", prob=diff)
    assert list(partial) == ["conv"]
    with pytest.raises(FirecaffeError, match="'ip' is not a net output"):
        net.backward(ip=np.zeros((2, 4)))


def test_forward_all_pads_the_last_batch_and_matches_one_by_one(deploy):
    net = caffe.Net(deploy, caffe.TEST)
    x = images(5, seed=1)
    out = net.forward_all(data=x, blobs=["ip"])
    assert out["prob"].shape == (5, 4) and out["ip"].shape == (5, 4)
    for k in range(5):
        single = net.forward(data=np.concatenate([x[k:k + 1], x[k:k + 1]]))["prob"][0]
        np.testing.assert_allclose(out["prob"][k], single, rtol=1e-5, atol=1e-7)


def test_forward_backward_all_returns_outputs_and_input_diffs(deploy):
    net = caffe.Net(deploy, caffe.TEST)
    x = images(3, seed=2)
    diff = np.ones((3, 4), np.float32)
    outs, diffs = net.forward_backward_all(data=x, prob=diff)
    assert outs["prob"].shape == (3, 4) and diffs["data"].shape == (3, 1, 5, 5)
    assert np.abs(diffs["data"]).max() < 1e-5          # softmax outputs sum to one: d(sum)/dx = 0


def test_set_input_arrays_needs_memory_data_first(deploy):
    net = caffe.Net(deploy, caffe.TEST)
    with pytest.raises(FirecaffeError, match=r"needs a MemoryData layer as the first layer; the first layer is 'data' \(Input\)"):
        net.set_input_arrays(np.zeros((2, 1, 5, 5), np.float32), np.zeros(2, np.float32))


def test_set_input_arrays_hands_4d_labels_to_the_layer(deploy):
    net = caffe.Net(deploy, caffe.TEST)
    seen = {}

    class FakeMemoryData:
        type, name = "MemoryData", "mem"

        def set_input_arrays(self, data, labels):
            seen.update(data=data.shape, labels=labels.shape)
    net.layers[0] = FakeMemoryData()
    net.set_input_arrays(np.zeros((4, 1, 5, 5), np.float32), np.arange(4, dtype=np.float32))
    assert seen == {"data": (4, 1, 5, 5), "labels": (4, 1, 1, 1)}


def test_names_and_layers(deploy):
    net = caffe.Net(deploy, caffe.TEST)
    assert net._layer_names == ["data", "conv", "relu", "ip", "prob"]
    assert list(net.layer_dict) == net._layer_names
    assert net.top_names["relu"] == ["conv"] and net.bottom_names["ip"] == ["conv"]
    assert [layer.type for layer in net.layers] == ["Input", "Convolution", "ReLU", "InnerProduct", "Softmax"]
    assert len(net.layers[1].blobs) == 2 and net.layers[1].blobs[0].data.shape == (3, 1, 3, 3)
    assert list(net.params) == ["conv", "ip"]
    assert list(net.blobs) == ["data", "conv", "ip", "prob"]
    assert net.inputs == ["data"] and net.outputs == ["prob"]
    assert set(net.blob_loss_weights.values()) == {0.0}


def test_pycaffes_underscored_names(deploy):
    # python/caffe/pycaffe.py builds its Net API on these; scripts use them too
    net = caffe.Net(deploy, caffe.TEST)
    x = images(2)
    net.blobs["data"].data[...] = x
    assert net._forward(0, len(net.layers) - 1) == 0.0                # no loss in a deploy net
    expected = net.forward(data=x)["prob"].copy()
    net.blobs["prob"].data[...] = 0
    net._forward(0, 4)
    np.testing.assert_array_equal(net.blobs["prob"].data, expected)
    net.blobs["prob"].diff[...] = 1.0
    net._backward(4, 0)
    grad = net.blobs["data"].diff.copy()
    np.testing.assert_array_equal(net.backward(prob=np.ones((2, 4), np.float32))["data"], grad)
    assert [blob is net.blobs[name] for blob, name in zip(net._blobs, net._blob_names)] == [True] * 4
    assert net._inputs == [0] and net._outputs == [3]                  # indices into _blobs
    assert net._blob_loss_weights == [0.0] * 4
    assert net._top_ids(2) == [1] and net._bottom_ids(3) == [1]         # relu in place on conv


MEMORY = """name: "memory"
layer { name: "data" type: "MemoryData" top: "data" top: "label"
        memory_data_param { batch_size: 2 channels: 1 height: 2 width: 2 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "data" bottom: "data" top: "loss" }
"""


def test_set_input_arrays_and_the_raw_call_feed_memory_data(tmp_path):
    path = tmp_path / "memory.prototxt"
    path.write_text(MEMORY)
    net = caffe.Net(str(path), caffe.TEST)
    data = np.arange(16, dtype=np.float32).reshape(4, 1, 2, 2)
    net._set_input_arrays(data, np.arange(4, dtype=np.float32).reshape(4, 1, 1, 1))
    net.forward()
    np.testing.assert_array_equal(net.blobs["data"].data, data[:2])
    assert net.blobs["label"].data.shape == (2, 1, 1, 1)                # Caffe's label top
    np.testing.assert_array_equal(net.blobs["label"].data.ravel(), [0, 1])
    with pytest.raises(FirecaffeError, match=r"labels of shape \(N, 1, 1, 1\)"):
        net._set_input_arrays(data, np.zeros(4, np.float32))
    net.set_input_arrays(data, np.arange(10, 14, dtype=np.float32))   # pycaffe's wrapper takes (N,)
    net.forward()
    np.testing.assert_array_equal(net.blobs["label"].data.ravel(), [10, 11])


def test_weights_round_trip_through_caffemodel_and_hdf5(deploy, tmp_path):
    net = caffe.Net(deploy, caffe.TEST)
    net.save_hdf5(str(tmp_path / "w.weights"))          # not named .h5: load_hdf5 still reads HDF5
    other = caffe.Net(deploy, caffe.TEST)
    assert not np.array_equal(other.params["conv"][0].data, net.params["conv"][0].data)
    other.load_hdf5(str(tmp_path / "w.weights"))
    np.testing.assert_array_equal(other.params["conv"][0].data, net.params["conv"][0].data)
    net.save(str(tmp_path / "w.caffemodel"))
    third = caffe.Net(deploy, caffe.TEST)
    third.copy_from(str(tmp_path / "w.caffemodel"))
    np.testing.assert_array_equal(third.params["ip"][1].data, net.params["ip"][1].data)


def test_share_with_reads_the_other_nets_weights_without_copying(deploy):
    a, b = caffe.Net(deploy, caffe.TEST), caffe.Net(deploy, caffe.TEST)
    b.share_with(a)
    a.params["ip"][0].data[...] = 0.25
    assert (b.params["ip"][0].data == 0.25).all()


def test_module_helpers():
    assert "Convolution" in caffe.layer_type_list() and caffe.layer_type_list() == sorted(caffe.layer_type_list())
    timer = caffe.Timer()
    timer.start()
    timer.stop()
    assert timer.ms >= 0
    caffe.set_mode_cpu()
    caffe.set_device(0)          # only chooses the device; CPU mode stays
    from firecaffe.proto import caffe_pb2
    assert caffe.caffe_pb2 is caffe_pb2 and caffe_pb2.TEST == caffe.TEST
