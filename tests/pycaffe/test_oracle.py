"""firecaffe against BVLC pycaffe's own answers (fixtures written by
oracle/make_fixtures.py under real Caffe): NetSpec's prototxt text, net outputs
and blob names, the anonymous loss top, force_backward input gradients, crop
offsets and the Transformer."""
import json
import os
import sys

import numpy as np
import pytest

import firecaffe as caffe
from firecaffe import coord_map, layers as L, params as P

ORACLE = os.path.join(os.path.dirname(__file__), "oracle")
sys.path.insert(0, ORACLE)
from oracle_specs import DEPLOY, SPECS, WIRING_NETS  # noqa: E402

FACTS = json.load(open(os.path.join(ORACLE, "pycaffe_facts.json")))
ARRAYS = np.load(os.path.join(ORACLE, "pycaffe_fixtures.npz"))


def build(text, tmp_path, name):
    path = tmp_path / f"{name}.prototxt"
    path.write_text(text)
    return caffe.Net(str(path), caffe.TEST)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_netspec_writes_the_same_prototxt_as_pycaffe(name):
    # compared as messages: the protobuf versions print floats differently (1 vs 1.0)
    from google.protobuf import text_format
    from firecaffe.proto import caffe_pb2
    expected = text_format.Parse(FACTS["specs"][name], caffe_pb2.NetParameter())
    ours = SPECS[name](L, P, coord_map)
    assert [layer.name for layer in ours.layer] == [layer.name for layer in expected.layer]
    assert ours == expected


@pytest.mark.parametrize("name", sorted(WIRING_NETS))
def test_outputs_and_blob_names_match_pycaffe(name, tmp_path):
    net = build(WIRING_NETS[name], tmp_path, name)
    net.forward()
    expected = FACTS["nets"][name]
    assert net.outputs == expected["outputs"]
    assert list(net.blobs) == expected["blobs"]
    if expected["automatic"] is not None:
        assert float(net.blobs["(automatic)"].data) == pytest.approx(expected["automatic"], rel=1e-6)


def test_force_backward_input_gradient_matches_pycaffe(tmp_path):
    net = build(DEPLOY, tmp_path, "deploy")
    for name, blobs in net.params.items():
        for k, blob in enumerate(blobs):
            blob.data[...] = ARRAYS[f"param_{name}_{k}"]
    np.testing.assert_allclose(net.forward(data=ARRAYS["x"])["prob"], ARRAYS["prob"], rtol=1e-5, atol=1e-7)
    grad = net.backward(prob=ARRAYS["probe"])["data"]
    assert np.abs(ARRAYS["grad"]).max() > 1e-3
    np.testing.assert_allclose(grad, ARRAYS["grad"], rtol=1e-4, atol=1e-7)


def test_transformer_matches_pycaffe():
    t = caffe.io.Transformer({"data": (1, 3, 4, 5)})
    t.set_transpose("data", (2, 0, 1))
    t.set_channel_swap("data", (2, 1, 0))
    t.set_raw_scale("data", 255)
    t.set_mean("data", np.array([104.0, 117.0, 123.0]))
    t.set_input_scale("data", 0.017)
    out = t.preprocess("data", ARRAYS["image"])
    np.testing.assert_allclose(out, ARRAYS["preprocessed"], rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(t.deprocess("data", out), ARRAYS["deprocessed"], rtol=1e-6, atol=1e-6)
