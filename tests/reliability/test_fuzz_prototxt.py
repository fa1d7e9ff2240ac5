"""Mutated prototxt either builds and runs or fails with a FirecaffeError: never another exception."""
import os
import re
import tempfile

from hypothesis import HealthCheck, given, settings, strategies as st

from firecaffe.core import backend
from firecaffe.errors import FirecaffeError
from firecaffe.engine.net import Net

VALID = """name: "Fuzz"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 9 dim: 9 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 stride: 1 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "norm1" type: "LRN" bottom: "pool1" top: "norm1" lrn_param { local_size: 3 } }
layer { name: "conv2" type: "Convolution" bottom: "norm1" top: "conv2"
  convolution_param { num_output: 4 kernel_size: 1 group: 2 } }
layer { name: "cat" type: "Concat" bottom: "norm1" bottom: "conv2" top: "cat" concat_param { axis: 1 } }
layer { name: "sum" type: "Eltwise" bottom: "norm1" bottom: "conv2" top: "sum" eltwise_param { operation: SUM } }
layer { name: "bn" type: "BatchNorm" bottom: "sum" top: "bn" }
layer { name: "scale" type: "Scale" bottom: "bn" top: "bn" scale_param { bias_term: true } }
layer { name: "drop" type: "Dropout" bottom: "cat" top: "cat" dropout_param { dropout_ratio: 0.5 } }
layer { name: "flat" type: "Flatten" bottom: "cat" top: "flat" }
layer { name: "ip" type: "InnerProduct" bottom: "flat" top: "ip" inner_product_param { num_output: 5 } }
layer { name: "slice" type: "Slice" bottom: "ip" top: "s1" top: "s2" slice_param { axis: 1 slice_point: 2 } }
layer { name: "reshape" type: "Reshape" bottom: "s2" top: "r" reshape_param { shape { dim: 0 dim: -1 } } }
layer { name: "prob" type: "Softmax" bottom: "r" top: "prob" }
layer { name: "deconv" type: "Deconvolution" bottom: "bn" top: "deconv"
  convolution_param { num_output: 2 kernel_size: 2 stride: 2 } }
layer { name: "sig" type: "Sigmoid" bottom: "deconv" top: "deconv" }
"""
TYPES = ["Input", "Convolution", "ReLU", "Pooling", "LRN", "Concat", "Eltwise", "BatchNorm", "Scale",
         "Dropout", "Flatten", "InnerProduct", "Slice", "Reshape", "Softmax", "Deconvolution", "Sigmoid",
         "TanH", "Split", "Silence", "Bias", "SoftmaxWithLoss", "Accuracy", "EuclideanLoss"]
NUMBER = re.compile(r"(?<=: )-?\d+(\.\d+)?\b")
BLOB = re.compile(r'(?<=bottom: ")[^"]+')


def delete_line(text, data):
    lines = text.splitlines()
    del lines[data.draw(st.integers(0, len(lines) - 1))]
    return "\n".join(lines)


def duplicate_line(text, data):
    lines = text.splitlines()
    i = data.draw(st.integers(0, len(lines) - 1))
    return "\n".join(lines[:i + 1] + [lines[i]] + lines[i + 1:])


def change_number(text, data):
    spots = list(NUMBER.finditer(text))
    spot = spots[data.draw(st.integers(0, len(spots) - 1))]
    value = data.draw(st.sampled_from(["0", "-1", "1", "7", "100000", "4294967295", "99999999999", "0.5"]))
    return text[:spot.start()] + value + text[spot.end():]


def swap_type(text, data):
    spots = list(re.finditer(r'(?<=type: ")[A-Za-z]+(?=")', text))
    spot = spots[data.draw(st.integers(0, len(spots) - 1))]
    return text[:spot.start()] + data.draw(st.sampled_from(TYPES)) + text[spot.end():]


def rename_bottom(text, data):
    spots = list(BLOB.finditer(text))
    spot = spots[data.draw(st.integers(0, len(spots) - 1))]
    names = sorted({m.group() for m in BLOB.finditer(text)} | {"nothing", "prob", "deconv", "data"})
    return text[:spot.start()] + data.draw(st.sampled_from(names)) + text[spot.end():]


MUTATIONS = [delete_line, duplicate_line, change_number, swap_type, rename_bottom]


def build_and_run(text):
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(text)
    try:
        net = Net(f.name, phase="TRAIN")
        net.forward_range()
        net.backward_range()
    finally:
        os.unlink(f.name)


def test_the_unmutated_net_runs():
    backend.set_mode_cpu()
    build_and_run(VALID)


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_mutated_prototxt_runs_or_fails_with_a_firecaffe_error(data):
    backend.set_mode_cpu()
    text = VALID
    for _ in range(data.draw(st.integers(1, 3))):
        text = data.draw(st.sampled_from(MUTATIONS))(text, data)
    try:
        build_and_run(text)
    except FirecaffeError:
        pass
