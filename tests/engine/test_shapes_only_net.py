"""Net(..., shapes_only=True): the layers' own shapes, parameter counts and FLOPs,
without filling weights or allocating arenas (what `firecaffe design` measures with)."""
import os

import numpy as np
import pytest
from google.protobuf import text_format

from firecaffe import Net
from firecaffe.core import backend
from firecaffe.insight.analysis import analyze
from firecaffe.proto import caffe_pb2

CONVNET = """
name: "convnet"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 17 dim: 17 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 8 kernel_size: 3 stride: 2 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "bn" type: "BatchNorm" bottom: "pool" top: "pool" }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc"
        inner_product_param { num_output: 5 weight_filler { type: "xavier" } bias_filler { type: "constant" value: 1 } } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""


def net_param(text):
    return text_format.Parse(text, caffe_pb2.NetParameter())


def test_shapes_params_and_flops_are_those_of_the_full_net():
    full, light = Net(net_param(CONVNET), phase="TEST"), Net(net_param(CONVNET), phase="TEST", shapes_only=True)
    assert {n: b.shape for n, b in light.blobs.items()} == {n: b.shape for n, b in full.blobs.items()}
    assert light.blobs["pool"].shape == (2, 8, 4, 4)           # 17 -> 8 (3x3/2 conv) -> 4 (ceil, 3x3/2 pool)
    assert analyze(light) == analyze(full)
    assert analyze(light)["params"] == 8 * 3 * 9 + 8 + (2 * 8 + 1) + 8 * 16 * 5 + 5    # BatchNorm: mean, var, factor


def test_weights_stay_unfilled_and_the_generator_is_not_drawn_from():
    state = backend.rng().bit_generator.state
    net = Net(net_param(CONVNET), phase="TEST", shapes_only=True)
    assert backend.rng().bit_generator.state == state
    assert net.param_arena is None
    for blobs in net.params.values():
        for blob in blobs:
            assert not np.any(blob.data)


def _resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads resident memory from /proc")
def test_a_gigabyte_of_weights_costs_no_memory():
    text = """
    layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 25000 } } }
    layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param { num_output: 10000 } }
    """
    before = _resident_bytes()
    net = Net(net_param(text), phase="TEST", shapes_only=True)
    assert analyze(net)["params"] == 25000 * 10000 + 10000          # 1 GB of float32 weights
    assert _resident_bytes() - before < 100 * 2**20
