"""Write the pycaffe fixtures that tests/pycaffe/test_oracle.py compares with.

Run with BVLC Caffe's pycaffe (not firecaffe: the two cannot share a process):

    source ~/.cache/caffe-oracle/caffe/env.sh && $CAFFE_PY tests/pycaffe/oracle/make_fixtures.py

It records: NetSpec's prototxt for two specs, net outputs and blob names of a
net with an anonymous loss top and of one with unsorted outputs, the input
gradient of a force_backward deploy net, crop offsets from coord_map, and a
Transformer's preprocess/deprocess.
"""
import json
import os
import sys
import tempfile

import numpy as np

import caffe
from caffe import coord_map, layers as L, params as P

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from oracle_specs import SPECS, WIRING_NETS, DEPLOY  # noqa: E402  (shared with the test)


def build(text):
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(text)
    try:
        return caffe.Net(f.name, caffe.TEST)
    finally:
        os.unlink(f.name)


def main():
    caffe.set_mode_cpu()
    facts = {"specs": {name: str(make(L, P, coord_map)) for name, make in SPECS.items()}, "nets": {}}
    for name, text in WIRING_NETS.items():
        net = build(text)
        net.forward()
        facts["nets"][name] = {"outputs": list(net.outputs), "blobs": list(net.blobs),
                               "automatic": float(net.blobs["(automatic)"].data) if "(automatic)" in net.blobs else None}
    net = build(DEPLOY)
    rng = np.random.RandomState(0)
    for blobs in net.params.values():
        for blob in blobs:
            blob.data[...] = rng.normal(0, 0.3, blob.data.shape)
    x = rng.normal(0, 1, net.blobs["data"].data.shape).astype(np.float32)
    probe = np.zeros(net.blobs["prob"].data.shape, np.float32)
    probe[:, 1] = 1
    net.forward(data=x)
    grad = net.backward(prob=probe)["data"].copy()
    arrays = {"x": x, "probe": probe, "grad": grad, "prob": net.blobs["prob"].data.copy()}
    for name, blobs in net.params.items():
        for k, blob in enumerate(blobs):
            arrays[f"param_{name}_{k}"] = blob.data.copy()

    t = caffe.io.Transformer({"data": (1, 3, 4, 5)})
    t.set_transpose("data", (2, 0, 1))
    t.set_channel_swap("data", (2, 1, 0))
    t.set_raw_scale("data", 255)
    t.set_mean("data", np.array([104.0, 117.0, 123.0]))
    t.set_input_scale("data", 0.017)
    image = rng.rand(4, 5, 3).astype(np.float32)
    arrays["image"] = image
    arrays["preprocessed"] = t.preprocess("data", image)
    arrays["deprocessed"] = t.deprocess("data", arrays["preprocessed"])
    np.savez(os.path.join(HERE, "pycaffe_fixtures.npz"), **arrays)
    with open(os.path.join(HERE, "pycaffe_facts.json"), "w") as f:
        json.dump(facts, f, indent=1, sort_keys=True)
    print("wrote", HERE)


if __name__ == "__main__":
    main()
