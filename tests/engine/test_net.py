"""Net construction and whole-net gradients: phases, splits, in-place tops,
shared parameters, loss weights, arenas, pycaffe API."""
import numpy as np
import pytest
from google.protobuf import text_format

from firecaffe import Net
from firecaffe.errors import FirecaffeError, PrototxtError
from firecaffe.proto import caffe_pb2


def net_param(text):
    return text_format.Parse(text, caffe_pb2.NetParameter())


FANOUT = """
name: "fanout"
layer { name: "in" type: "Input" top: "x" top: "t" input_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "h"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" } } }
layer { name: "relu" type: "ReLU" bottom: "h" top: "h" relu_param { negative_slope: 0.1 } }
layer { name: "a" type: "InnerProduct" bottom: "h" top: "a" param { name: "shared_w" } param { name: "shared_b" }
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" } bias_filler { type: "gaussian" } } }
layer { name: "b" type: "InnerProduct" bottom: "h" top: "b" param { name: "shared_w" } param { name: "shared_b" }
        inner_product_param { num_output: 2 } }
layer { name: "ip3" type: "InnerProduct" bottom: "h" top: "h2" inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }
layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" bottom: "h2" top: "s" eltwise_param { coeff: 1 coeff: 0.5 coeff: 1 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "s" bottom: "t" top: "loss" loss_weight: 2 }
"""


def make_fanout_net():
    net = Net(net_param(FANOUT), phase="TRAIN", dtype=np.float64)
    gen = np.random.default_rng(3)
    net.blobs["x"].data[...] = gen.standard_normal((4, 3))
    net.blobs["t"].data[...] = gen.standard_normal((4, 2))
    return net


def numeric_net_gradient(net, array, eps=1e-6):
    flat = array.reshape(-1)
    out = np.empty(flat.size)
    for k in range(flat.size):
        orig = flat[k]
        flat[k] = orig + eps
        plus = net.forward_range()
        flat[k] = orig - eps
        minus = net.forward_range()
        flat[k] = orig
        out[k] = (plus - minus) / (2 * eps)
    return out.reshape(array.shape)


def test_split_fanout_and_shared_params_match_finite_differences():
    net = make_fanout_net()
    assert any(layer.type == "Split" for layer in net.layers)
    net.clear_param_diffs()
    net.forward_range()
    net.backward_range()
    for layer_name in ("ip1", "a", "ip3"):
        for blob in net.params[layer_name]:
            expected = numeric_net_gradient(net, blob.data)
            np.testing.assert_allclose(blob.diff, expected, rtol=1e-5, atol=1e-7)


def test_shared_params_are_one_blob_and_counted_once():
    net = make_fanout_net()
    assert net.params["a"][0] is net.params["b"][0]
    owned = sum(b.count for b in net.learnable_params)
    assert owned == net.param_arena.size
    assert owned == 3 * 5 + 5 + 5 * 2 + 2 + 5 * 2 + 2


def test_learnable_blobs_are_views_into_the_arenas_in_reverse_layer_order():
    net = make_fanout_net()
    for blob in net.learnable_params:
        assert np.shares_memory(blob.data, net.param_arena)
        assert np.shares_memory(blob.diff, net.diff_arena)
    # the last layer with parameters comes first in the arena
    first = min(range(len(net.learnable_params)), key=lambda i: net.param_offsets[i])
    assert net.layers[net.param_owner_layer[first]].name == "ip3"
    # after the last layer's backward, its slot of the arena is ready
    ends = []
    net.forward_range()
    net.backward_range(grad_ready=ends.append)
    assert ends == sorted(ends) and ends[-1] == net.param_arena.size


def test_loss_weight_scales_loss_and_gradient():
    net = make_fanout_net()
    loss = net.forward_range()
    s, t = net.blobs["s"].data, net.blobs["t"].data
    assert loss == pytest.approx(2 * np.sum((s - t) ** 2) / 4 / 2)


def test_phase_rules_pick_layers():
    text = """
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 } } }
    layer { name: "train_only" type: "ReLU" bottom: "x" top: "y" include { phase: TRAIN } }
    layer { name: "test_only" type: "Sigmoid" bottom: "x" top: "y" include { phase: TEST } }
    layer { name: "staged" type: "TanH" bottom: "y" top: "z" include { stage: "deep" } }
    layer { name: "not_lvl" type: "TanH" bottom: "y" top: "w" exclude { min_level: 2 } }
    """
    train = Net(net_param(text), phase="TRAIN")
    assert [layer.name for layer in train.layers] == ["in", "train_only", "not_lvl"]
    test = Net(net_param(text), phase="TEST", stages=["deep"], level=3)
    assert [layer.name for layer in test.layers] == ["in", "test_only", "staged"]


def test_net_level_inputs_become_an_input_layer():
    param = net_param('input: "data" input_dim: 2 input_dim: 3 input_dim: 4 input_dim: 5 '
                      'layer { name: "r" type: "ReLU" bottom: "data" top: "out" }')
    net = Net(param)
    assert net.inputs == ["data"]
    assert net.outputs == ["out"]
    assert net.blobs["out"].shape == (2, 3, 4, 5)


def test_forward_with_inputs_returns_outputs_and_reshapes():
    param = net_param('input: "data" input_shape { dim: 1 dim: 3 } '
                      'layer { name: "r" type: "ReLU" bottom: "data" top: "out" }')
    net = Net(param)
    out = net.forward(data=np.array([[-1.0, 2.0, -3.0], [4.0, -5.0, 6.0]]))
    np.testing.assert_array_equal(out["out"], [[0, 2, 0], [4, 0, 6]])


def test_unknown_bottom_names_layer():
    param = net_param('layer { name: "r" type: "ReLU" bottom: "nothing" top: "y" }')
    with pytest.raises(PrototxtError, match="layer 'r'.*unknown bottom blob 'nothing'"):
        Net(param)


def test_unknown_layer_type_is_named():
    param = net_param('layer { name: "odd" type: "NoSuchLayer" top: "y" }')
    with pytest.raises(PrototxtError, match="unknown layer type 'NoSuchLayer'") as info:
        Net(param)
    assert "did you mean" not in str(info.value) and len(str(info.value)) < 160


@pytest.mark.parametrize("typo, meant", [("Convolutoin", "'Convolution'"), ("relu", "'ReLU'"),
                                         ("SoftmaxWithLos", "'SoftmaxWithLoss'")])
def test_a_misspelt_layer_type_gets_a_suggestion_on_one_short_line(typo, meant):
    param = net_param(f'layer {{ name: "odd" type: "{typo}" top: "y" }}')
    with pytest.raises(PrototxtError) as info:
        Net(param)
    message = str(info.value)
    assert f"unknown layer type '{typo}'; did you mean {meant}" in message
    assert "layer_type_list()" in message and "\n" not in message and len(message) < 200


def test_shape_mismatch_in_shared_param_names_both_layers():
    param = net_param("""
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "a" type: "InnerProduct" bottom: "x" top: "a" param { name: "w" } inner_product_param { num_output: 2 bias_term: false } }
    layer { name: "b" type: "InnerProduct" bottom: "a" top: "b" param { name: "w" } inner_product_param { num_output: 2 bias_term: false } }
    """)
    with pytest.raises(FirecaffeError, match="shared param 'w'.*layer 'a'"):
        Net(param)


def test_layers_that_do_not_reach_a_loss_skip_backward():
    param = net_param("""
    layer { name: "in" type: "Input" top: "x" top: "t" input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 2 } } }
    layer { name: "side" type: "InnerProduct" bottom: "x" top: "side" inner_product_param { num_output: 2 } }
    layer { name: "main" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 2 } }
    layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
    """)
    net = Net(param, phase="TRAIN")
    need = dict(zip(net._layer_names, net.layer_need_backward))
    assert need["main"] and need["loss"] and not need["side"] and not need["in"]
