"""The layers of ops/activation, exp_log_power, loss_extra, loss_logistic,
indexing, spatial and statistics against real BVLC Caffe: forward and backward
values at float32 rounding.

The fixtures were made by golden/make_golden.py with Caffe's pycaffe: each
holds one layer's text, its inputs and parameters, the tops Caffe computed, the
top diffs it was given and the gradients it returned.
"""
import pathlib

import numpy as np
import pytest

from firecaffe.core.blob import Blob
from firecaffe.engine.testing import layer_param, make_layer
from firecaffe.ops import create_layer

GOLDEN = pathlib.Path(__file__).parent / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.npz"))
RTOL, ATOL = 1e-5, 1e-6


def load(name):
    with np.load(GOLDEN / f"{name}.npz") as f:
        return {k: f[k] for k in f.files}


def build(case):
    text = str(case["layer"])
    kinds = [k for k in case["kinds"] if k]
    bottoms = [case[f"bottom{i}"] for i in range(len(kinds))]
    if case["in_place"]:
        param = layer_param(text)
        param.name = "golden"
        layer = create_layer(param, dtype=np.float32)
        blob = Blob(bottoms[0].shape, np.float32)
        blob.data[...] = bottoms[0]
        layer.setup([blob], [blob])
        return layer, [blob], [blob], kinds
    layer, bottom, top = make_layer(text, bottoms, dtype=np.float32, num_top=int(case["num_top"]))
    return layer, bottom, top, kinds


def close(got, expected, what):
    assert got.shape == expected.shape, f"{what}: shape {got.shape}, Caffe {expected.shape}"
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL, err_msg=what)


def test_every_new_layer_type_has_a_fixture():
    types = {str(load(name)["layer"]).split('"')[1] for name in CASES}
    assert types == {
        "AbsVal", "ArgMax", "BNLL", "BatchReindex", "Clip", "ContrastiveLoss", "Crop", "ELU", "Embed", "Exp",
        "Filter", "HingeLoss", "Im2col", "InfogainLoss", "Log", "MVN", "MultinomialLogisticLoss", "PReLU",
        "Parameter", "Power", "Reduction", "SPP", "SigmoidCrossEntropyLoss", "Swish", "Threshold", "Tile"}


@pytest.mark.parametrize("name", CASES)
def test_matches_caffe(name):
    case = load(name)
    layer, bottom, top, kinds = build(case)
    for j, blob in enumerate(layer.blobs):
        blob.data[...] = case[f"param{j}"]
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    for k, t in enumerate(top):
        close(t.data, case[f"top{k}"], f"{name}: top {k}")
    if not case["backward"]:
        return
    for k, t in enumerate(top):
        t.diff[...] = case[f"top_diff{k}"]
    layer.backward(top, [kind == "data" for kind in kinds], bottom)
    for i, kind in enumerate(kinds):
        if kind == "data":
            close(bottom[i].diff, case[f"bottom_diff{i}"], f"{name}: gradient of bottom {i}")
    for j, blob in enumerate(layer.blobs):
        close(blob.diff, case[f"param_diff{j}"], f"{name}: gradient of parameter {j}")
