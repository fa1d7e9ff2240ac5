"""The new layer types inside a Net: Parameter's blob in the net's arenas, and
force_backward leaving out the bottoms that take no gradient."""
import numpy as np
from google.protobuf import text_format

from firecaffe.engine.net import Net
from firecaffe.proto import caffe_pb2


def net(text):
    return Net(text_format.Parse(text, caffe_pb2.NetParameter()), phase="TRAIN")


def test_parameter_blob_gets_the_gradient_of_its_top():
    n = net('''
        layer { name: "p" type: "Parameter" top: "p" parameter_param { shape { dim: 2 dim: 3 } } }
        layer { name: "t" type: "Input" top: "t" input_param { shape { dim: 2 dim: 3 } } }
        layer { name: "loss" type: "EuclideanLoss" bottom: "p" bottom: "t" top: "loss" }''')
    n.params["p"][0].data[...] = np.arange(6).reshape(2, 3)
    n.blobs["t"].data[...] = 1
    n.clear_param_diffs()
    loss = n.forward_backward()
    np.testing.assert_allclose(loss, ((np.arange(6) - 1.0) ** 2).sum() / 4)
    np.testing.assert_allclose(n.params["p"][0].diff, (np.arange(6).reshape(2, 3) - 1.0) / 2)
    assert n.blobs["p"].data is n.params["p"][0].data      # the top is the blob in the arena


def test_force_backward_leaves_out_indices_and_layers_without_backward():
    n = net('''force_backward: true
        layer { name: "in" type: "Input" top: "idx" top: "x" top: "order"
                input_param { shape { dim: 3 } shape { dim: 3 dim: 4 } shape { dim: 2 } } }
        layer { name: "embed" type: "Embed" bottom: "idx" top: "e"
                embed_param { num_output: 4 input_dim: 5 weight_filler { type: "gaussian" } } }
        layer { name: "pick" type: "BatchReindex" bottom: "e" bottom: "order" top: "picked" }
        layer { name: "arg" type: "ArgMax" bottom: "x" top: "best" }
        layer { name: "thr" type: "Threshold" bottom: "x" top: "on" }
        layer { name: "sum" type: "Reduction" bottom: "picked" top: "loss" loss_weight: 1 }''')
    n.blobs["idx"].data[...] = [4, 0, 2]
    n.blobs["order"].data[...] = [2, 2]
    n.blobs["x"].data[...] = np.arange(12).reshape(3, 4)
    n.clear_param_diffs()
    n.forward_backward()
    expected = np.zeros((5, 4))
    expected[2] = 2                       # row 2 picked twice, each summed with weight 1
    np.testing.assert_allclose(n.params["embed"][0].diff, expected)
    np.testing.assert_array_equal(n.blobs["best"].data.reshape(-1), [3, 3, 3])
