"""caffe.NetSpec with caffe.layers / caffe.params writes Caffe's prototxt."""
import numpy as np
import pytest
from google.protobuf import text_format

import firecaffe as caffe
from firecaffe import layers as L, params as P
from firecaffe.net_spec import to_proto
from firecaffe.proto import caffe_pb2


def test_keywords_go_to_the_type_param_or_the_layer():
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 1, 6, 6]))
    n.conv = L.Convolution(n.data, kernel_size=3, num_output=4, param=[dict(lr_mult=1), dict(lr_mult=2)],
                           weight_filler=dict(type="xavier"), include=dict(phase=caffe.TEST))
    layer = n.to_proto().layer[1]
    assert layer.name == "conv" and list(layer.bottom) == ["data"] and list(layer.top) == ["conv"]
    assert list(layer.convolution_param.kernel_size) == [3] and layer.convolution_param.num_output == 4
    assert layer.convolution_param.weight_filler.type == "xavier"
    assert [p.lr_mult for p in layer.param] == [1, 2]
    assert layer.include[0].phase == caffe_pb2.TEST


def test_enums_in_place_ntop_and_automatic_names():
    n = caffe.NetSpec()
    n.data, n.label = L.DummyData(shape=[dict(dim=[2, 3]), dict(dim=[2])], ntop=2)
    relu = L.ReLU(n.data, in_place=True)
    n.pool = L.Pooling(L.Reshape(relu, shape=dict(dim=[2, 3, 1, 1])), pool=P.Pooling.AVE, kernel_size=1)
    n.loss = L.SoftmaxWithLoss(L.Flatten(n.pool), n.label, loss_weight=0.5)
    proto = n.to_proto()
    names = [layer.name for layer in proto.layer]
    assert names == ["data", "ReLU1", "Reshape1", "pool", "Flatten1", "loss"]
    assert list(proto.layer[1].top) == ["data"]                        # in place
    assert proto.layer[3].pooling_param.pool == caffe_pb2.PoolingParameter.AVE
    assert list(proto.layer[5].loss_weight) == [0.5]
    assert P.Pooling.MAX == caffe_pb2.PoolingParameter.MAX


def test_written_prototxt_reads_back_and_builds(tmp_path):
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 1, 6, 6]))
    n.ip = L.InnerProduct(n.data, num_output=3, weight_filler=dict(type="gaussian", std=0.1))
    n.prob = L.Softmax(n.ip)
    path = tmp_path / "spec.prototxt"
    path.write_text(str(n.to_proto()))
    assert text_format.Parse(path.read_text(), caffe_pb2.NetParameter()) == n.to_proto()
    net = caffe.Net(str(path), caffe.TEST)
    out = net.forward(data=np.ones((2, 1, 6, 6)))
    assert out["prob"].shape == (2, 3) and np.allclose(out["prob"].sum(1), 1)


def test_to_proto_of_tops_and_layers_without_tops():
    data = L.Input(shape=dict(dim=[1, 2]))
    silence = L.Silence(L.ReLU(data), ntop=0)
    proto = to_proto(silence)
    assert [layer.type for layer in proto.layer] == ["Input", "ReLU", "Silence"]
    assert proto.layer[2].name == "Silence1" and not proto.layer[2].top
    assert caffe.net_spec.to_proto is to_proto


def test_a_bottom_that_is_not_a_top_is_pycaffes_type_error():
    data = L.Input(shape=dict(dim=[1, 2]), ntop=2)                      # a tuple of two Tops
    with pytest.raises(TypeError) as caught:
        L.Silence(data, ntop=0)
    assert str(caught.value) == "Silence input 0 is not a Top (type is <class 'tuple'>)"


def test_unknown_field_is_a_clear_error():
    with pytest.raises(AttributeError, match="no_such_field"):
        L.Convolution(L.Input(shape=dict(dim=[1])), no_such_field=3).to_proto()
