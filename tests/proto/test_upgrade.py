"""Caffe's upgrade path: V0 and V1 nets, data transforms, inputs, solvers."""
import pathlib

import pytest

from firecaffe.errors import PrototxtError
from firecaffe.proto import caffe_pb2, io, upgrade

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def _by_name(net):
    return {layer.name: layer for layer in net.layer}


def test_v1_layer_types_become_type_strings():
    net = io.read_net(FIXTURES / "lenet_v1.prototxt")
    assert not net.layers
    assert [layer.type for layer in net.layer] == [
        "Data", "Data", "Convolution", "Pooling", "InnerProduct", "ReLU",
        "InnerProduct", "Accuracy", "SoftmaxWithLoss"]


def test_v1_blobs_lr_and_weight_decay_become_param_specs():
    layers = _by_name(io.read_net(FIXTURES / "lenet_v1.prototxt"))
    conv = layers["conv1"]
    assert [(p.lr_mult, p.decay_mult) for p in conv.param] == [(1, 1), (2, 0)]
    assert conv.convolution_param.num_output == 20
    assert conv.convolution_param.weight_filler.type == "xavier"
    ip1 = layers["ip1"]
    assert [(p.name, p.lr_mult) for p in ip1.param] == [("ip1_w", 1), ("ip1_b", 2)]
    assert not ip1.param[0].HasField("decay_mult")
    assert list(layers["loss"].loss_weight) == [1]
    assert layers["accuracy"].include[0].phase == caffe_pb2.TEST


def test_v1_data_preprocessing_moves_into_transform_param():
    train = io.read_net(FIXTURES / "lenet_v1.prototxt").layer[0]
    assert train.include[0].phase == caffe_pb2.TRAIN
    assert train.transform_param.scale == pytest.approx(0.00390625)
    assert train.transform_param.HasField("mirror")
    assert not train.data_param.HasField("scale")
    assert not train.data_param.HasField("mirror")
    assert train.data_param.batch_size == 64


def test_v0_net_upgrades_and_folds_padding_into_conv():
    net = io.read_net(FIXTURES / "tiny_v0.prototxt")
    layers = _by_name(net)
    assert "pad1" not in layers
    assert [layer.type for layer in net.layer] == [
        "Data", "Convolution", "ReLU", "Pooling", "LRN", "InnerProduct", "SoftmaxWithLoss"]
    conv = layers["conv1"]
    assert list(conv.bottom) == ["data"]
    assert list(conv.convolution_param.pad) == [2]
    assert list(conv.convolution_param.kernel_size) == [5]
    assert conv.convolution_param.weight_filler.std == pytest.approx(0.01)
    assert [(p.lr_mult, p.decay_mult) for p in conv.param] == [(1, 1), (2, 0)]
    pool = layers["pool1"].pooling_param
    assert (pool.pool, pool.kernel_size, pool.stride) == (caffe_pb2.PoolingParameter.AVE, 3, 2)
    assert layers["norm1"].lrn_param.local_size == 3
    assert layers["fc"].inner_product_param.bias_term is False
    data = layers["data"]
    assert data.data_param.source == "tiny/train_leveldb"
    assert data.data_param.batch_size == 32
    assert data.transform_param.mean_file == "tiny/mean.binaryproto"
    assert (data.transform_param.crop_size, data.transform_param.mirror) == (28, True)


def test_v0_field_on_the_wrong_layer_type_is_refused():
    text = 'layers { layer { name: "r" type: "relu" num_output: 3 } }'
    with pytest.raises(PrototxtError, match=r"^v0\.prototxt: layer 'r'.*num_output"):
        io.parse_net(text, "v0.prototxt")


def test_padding_before_a_non_conv_layer_is_refused():
    text = ('layers { layer { name: "p" type: "padding" pad: 1 } bottom: "x" top: "p" } '
            'layers { layer { name: "r" type: "relu" } bottom: "p" top: "r" }')
    with pytest.raises(PrototxtError, match="only conv"):
        io.parse_net(text)


def test_input_dim_becomes_input_shape_and_inputs_stay():
    net = io.read_net(FIXTURES / "deploy_input_dim.prototxt")
    assert list(net.input) == ["data", "scale"]
    assert [list(s.dim) for s in net.input_shape] == [[10, 3, 32, 32], [10, 1, 1, 1]]
    assert not net.input_dim


def test_input_dim_of_the_wrong_length_is_refused():
    with pytest.raises(PrototxtError, match="4 values per input"):
        io.parse_net('input: "data" input_dim: 1 input_dim: 3')


def test_input_layer_form_is_left_alone():
    text = 'layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 } } }'
    assert io.parse_net(text) == io.parse_net(io.net_to_text(io.parse_net(text)))
    assert list(io.parse_net(text).layer[0].input_param.shape[0].dim) == [1, 3]


def test_mixing_layer_and_layers_is_refused():
    with pytest.raises(PrototxtError, match="both 'layer' and"):
        io.parse_net('layer { name: "a" } layers { name: "b" }')


def test_batchnorm_frozen_param_blocks_are_dropped():
    text = ('layer { name: "bn" type: "BatchNorm" '
            + 'param { lr_mult: 0 } ' * 3 + '}')
    assert not io.parse_net(text).layer[0].param


def test_every_v1_enum_has_a_type_string():
    assert set(upgrade.V1_TYPES) == set(caffe_pb2.V1LayerParameter.LayerType.keys())


def test_upgrade_returns_a_new_message():
    net = caffe_pb2.NetParameter()
    net.layers.add(name="r", type=caffe_pb2.V1LayerParameter.RELU)
    upgraded = upgrade.upgrade_net(net)
    assert len(net.layers) == 1 and upgraded.layer[0].type == "ReLU"


def test_v1_caffemodel_keeps_its_blobs(tmp_path):
    net = caffe_pb2.NetParameter()
    v1 = net.layers.add(name="fc", type=caffe_pb2.V1LayerParameter.INNER_PRODUCT, blobs_lr=[1, 2])
    v1.blobs.add(num=1, channels=1, height=2, width=2, data=[1, 2, 3, 4])
    path = tmp_path / "old.caffemodel"
    path.write_bytes(net.SerializeToString())
    layer = io.read_caffemodel(path).layer[0]
    assert layer.type == "InnerProduct" and len(layer.param) == 2
    assert io.blob_to_array(layer.blobs[0]).tolist() == [[[[1, 2], [3, 4]]]]


def test_window_datas_own_scale_stays_in_the_current_format_and_moves_from_v1_as_in_caffe():
    from google.protobuf import text_format
    current = text_format.Parse('layer { name: "w" type: "WindowData" window_data_param { scale: 0.5 '
                                'crop_size: 8 } }', caffe_pb2.NetParameter())
    layer = upgrade.upgrade_net(current).layer[0]
    assert layer.window_data_param.scale == 0.5 and not layer.transform_param.HasField("scale")
    assert layer.transform_param.crop_size == 8                  # read from transform_param, as Caffe reads it
    v1 = text_format.Parse('layers { name: "w" type: WINDOW_DATA window_data_param { scale: 0.5 } }',
                           caffe_pb2.NetParameter())
    layer = upgrade.upgrade_net(v1).layer[0]                     # Caffe's UpgradeNetDataTransformation
    assert layer.transform_param.scale == 0.5 and not layer.window_data_param.HasField("scale")
