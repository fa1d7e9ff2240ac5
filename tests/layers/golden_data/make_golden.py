"""Make the golden fixtures of the recurrent layers with real Caffe (BVLC).

Run with Caffe's pycaffe, never with firecaffe in the same process:
    source ~/.cache/caffe-oracle/caffe/env.sh
    $CAFFE_PY tests/layers/golden_data/make_golden.py
Each case is a tiny net (Input -> layer) with seeded inputs and Caffe's own
gaussian-filled parameters; forward twice (the second batch continues the first
sequence where cont says so), then backward from a seeded top diff with
force_backward. Saved per case: the prototxt, inputs, parameters, outputs of both
forwards, and bottom/parameter diffs of the backward after the second forward.
"""
import os
import sys
import tempfile

import numpy as np
import caffe

HERE = os.path.dirname(os.path.abspath(__file__))
T, N, D, H = 3, 2, 4, 3


def shape_text(shape):
    return "shape { " + " ".join(f"dim: {d}" for d in shape) + " }"


def net_text(layer_type, inputs, tops, extra):
    names = list(inputs)
    return (f'name: "golden" force_backward: true\n'
            f'layer {{ name: "input" type: "Input" {" ".join(f"top: {n!r}" for n in names)}\n'
            f'  input_param {{ {" ".join(shape_text(a.shape) for a in inputs.values())} }} }}\n'
            f'layer {{ name: "layer" type: "{layer_type}" {" ".join(f"bottom: {n!r}" for n in names)}\n'
            f'  {" ".join(f"top: {t!r}" for t in tops)} {extra} }}\n').replace("'", '"')


def run_case(name, layer_type, batches, tops, extra, seed):
    text = net_text(layer_type, batches[0], tops, extra)
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(text)
    caffe.set_random_seed(seed)
    net = caffe.Net(f.name, caffe.TRAIN)
    os.unlink(f.name)
    out = {"prototxt": np.array(text)}
    params = net.params.get("layer", [])
    for k, p in enumerate(params):
        out[f"param{k}"] = p.data.copy()
    gen = np.random.default_rng(seed)
    for b, inputs in enumerate(batches):
        for key, value in inputs.items():
            net.blobs[key].data[...] = value
            out[f"in{b}_{key}"] = value.astype(np.float32)
        net.forward()
        for t in tops:
            out[f"out{b}_{t}"] = net.blobs[t].data.copy()
    for t in tops:
        diff = gen.standard_normal(net.blobs[t].shape).astype(np.float32)
        net.blobs[t].diff[...] = diff
        out[f"topdiff_{t}"] = diff
    for p in params:
        p.diff[...] = 0
    for key in batches[-1]:
        net.blobs[key].diff[...] = 0
    net.backward()
    for key in batches[-1]:
        out[f"diff_{key}"] = net.blobs[key].diff.copy()
    for k, p in enumerate(params):
        out[f"paramdiff{k}"] = p.diff.copy()
    np.savez_compressed(os.path.join(HERE, f"{name}.npz"), **out)
    print(name, sorted(out), file=sys.stderr)


def main():
    caffe.set_mode_cpu()
    gen = np.random.default_rng(0)
    fill = ('weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }')
    conts = [np.array([[0, 0], [1, 1], [1, 0]], np.float32), np.array([[1, 0], [1, 1], [0, 1]], np.float32)]
    for kind, units in (("RNN", 1), ("LSTM", 4)):
        seq = [{"x": gen.standard_normal((T, N, D)).astype(np.float32), "cont": c} for c in conts]
        param = f"recurrent_param {{ num_output: {H} {fill} }}"
        run_case(f"{kind.lower()}", kind, seq, ["h"], param, 1)
        static = [dict(b, x_static=gen.standard_normal((N, 5)).astype(np.float32)) for b in seq]
        run_case(f"{kind.lower()}_static", kind, static, ["h"], param, 2)
        exposed = [dict(b, h0=gen.standard_normal((1, N, H)).astype(np.float32)) for b in seq]
        if kind == "LSTM":
            exposed = [dict(b, c0=gen.standard_normal((1, N, H)).astype(np.float32)) for b in exposed]
        param = f"recurrent_param {{ num_output: {H} expose_hidden: true {fill} }}"
        tops = ["h", "hT"] + (["cT"] if kind == "LSTM" else [])
        run_case(f"{kind.lower()}_exposed", kind, exposed, tops, param, 3)
    unit = [{"c_prev": gen.standard_normal((1, 4, H)).astype(np.float32),
             "gates": gen.standard_normal((1, 4, 4 * H)).astype(np.float32),
             "cont": np.array([[0, 1, 1, 0]], np.float32)}]
    run_case("lstm_unit", "LSTMUnit", unit, ["c", "h"], "", 4)


if __name__ == "__main__":
    main()
