"""Caffe's net wiring: anonymous loss tops (AutoTopBlobs), force_backward,
net outputs (in-place tops included, sorted as Caffe lists them), inputs-only
forward, and --stage/--level in `firecaffe analyze`."""
import json

import numpy as np
import pytest
from click.testing import CliRunner
from google.protobuf import text_format

from firecaffe import Net
from firecaffe.cli import cli
from firecaffe.errors import FirecaffeError
from firecaffe.proto import caffe_pb2


def net_param(text):
    return text_format.Parse(text, caffe_pb2.NetParameter())


INPUTS = 'layer { name: "in" type: "Input" top: "x" top: "t" input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 3 } } }\n'


def test_loss_layer_without_top_gets_an_anonymous_one_that_counts_in_the_loss():
    net = Net(net_param("force_backward: true\n" + INPUTS + 'layer { name: "loss" type: "EuclideanLoss" bottom: "x" bottom: "t" }'),
              phase="TRAIN", dtype=np.float64)
    x, t = np.arange(6.).reshape(2, 3), np.ones((2, 3))
    net.blobs["x"].data[...], net.blobs["t"].data[...] = x, t
    loss = net.forward_range()
    assert loss == pytest.approx(((x - t) ** 2).sum() / 2 / 2)
    assert net.outputs == []                   # as in Caffe: the automatic top is not an output
    assert [b.name for b in net.top_vecs[-1]] == ["(automatic)"] and list(net.blobs) == ["x", "t", "(automatic)"]
    net.backward_range()
    assert net.blobs["x"].diff == pytest.approx((x - t) / 2)


DEPLOY = """
force_backward: true
layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


def test_force_backward_gives_input_gradients_in_a_net_without_loss():
    net = Net(net_param(DEPLOY), phase="TEST", dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((2, 3))
    probe = np.zeros((2, 4))
    probe[:, 1] = 1.0                               # d prob[:, 1] / d data, the saliency idiom
    net.forward(data=x)
    grad = net.backward(prob=probe)["data"]
    w = net.params["ip"][0].data

    def prob1(inp):
        z = inp @ w.T + net.params["ip"][1].data
        e = np.exp(z - z.max(1, keepdims=True))
        return (e / e.sum(1, keepdims=True))[:, 1]
    eps, numeric = 1e-6, np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += eps
        minus[idx] -= eps
        numeric[idx] = (prob1(plus) - prob1(minus))[idx[0]] / (2 * eps)
    assert np.abs(grad).max() > 1e-3
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_without_force_backward_a_lossless_net_needs_no_backward():
    net = Net(net_param(DEPLOY.replace("force_backward: true", "")), phase="TEST")
    assert not any(net.layer_need_backward)


def test_force_backward_keeps_labels_out():
    text = """force_backward: true
layer { name: "in" type: "Input" top: "x" top: "label" input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "label" top: "loss" }"""
    net = Net(net_param(text), phase="TRAIN")
    assert net.bottom_need_backward[-1] == [True, False]


def test_outputs_include_in_place_tops_and_forward_returns_them():
    net = Net(net_param("""
layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "gaussian" } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }"""))
    assert net.outputs == ["conv"]
    out = net.forward(data=np.ones((1, 1, 4, 4)))
    assert list(out) == ["conv"] and out["conv"].shape == (1, 2, 2, 2) and (out["conv"] >= 0).all()


def test_outputs_are_sorted_by_name_as_caffe_lists_them():
    net = Net(net_param(INPUTS + """
layer { name: "z" type: "ReLU" bottom: "x" top: "zeta" }
layer { name: "a" type: "ReLU" bottom: "t" top: "alpha" }"""))
    assert net.outputs == ["alpha", "zeta"]


def test_forward_into_a_blob_from_a_data_layer_is_an_error():
    net = Net("nets/lenet_digits/train_test.prototxt", phase="TRAIN")
    assert net.inputs == []
    with pytest.raises(FirecaffeError, match=r"'data' is not a net input \(it is produced by layer 'digits' \(HDF5Data\)\)"):
        net.forward(data=np.zeros((64, 1, 8, 8)))


def test_forward_end_returns_the_end_layers_tops_of_this_run():
    net = Net(net_param(INPUTS + """
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip" inner_product_param { num_output: 2 } }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "r" }"""), dtype=np.float64)
    x = np.arange(6.).reshape(2, 3)
    net.params["ip"][0].data[...] = 1.0
    out = net.forward(end="ip", x=x)
    assert list(out) == ["ip"]
    np.testing.assert_allclose(out["ip"], x.sum(1, keepdims=True) * np.ones((1, 2)))
    assert net.blobs["r"].data.sum() == 0          # relu did not run


def test_analyze_takes_stage_and_level(tmp_path):
    path = tmp_path / "staged.prototxt"
    path.write_text("""name: "staged"
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 } } }
layer { name: "deploy_ip" type: "InnerProduct" bottom: "x" top: "y" include { stage: "deploy" }
        inner_product_param { num_output: 7 } }
layer { name: "deep_ip" type: "InnerProduct" bottom: "x" top: "z" include { min_level: 2 }
        inner_product_param { num_output: 5 } }
""")
    runner = CliRunner()

    def layer_names(*args):
        result = runner.invoke(cli, ["analyze", str(path), "--json", *args])
        assert result.exit_code == 0, result.output
        return [row["name"] for row in json.loads(result.output)["layers"]]
    assert layer_names() == ["in"]
    assert layer_names("--stage", "deploy") == ["in", "deploy_ip"]
    assert layer_names("--level", "2") == ["in", "deep_ip"]


def test_time_runs_every_layers_backward_even_without_a_loss():
    from firecaffe.insight.timing import time_net
    net = Net(net_param(DEPLOY.replace("force_backward: true", "")), phase="TEST")
    calls = []
    for layer in net.layers:
        original = layer.backward
        layer.backward = lambda top, down, bottom, _name=layer.name, _run=original: (calls.append(_name),
                                                                                     _run(top, down, bottom))
    time_net(net, 1)
    assert calls.count("ip") == 1 and calls.count("prob") == 1      # the timed pass (the warm-up is Net::Backward)
