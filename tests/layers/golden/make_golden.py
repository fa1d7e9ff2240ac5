"""Make the golden fixtures of tests/layers/test_golden.py with real BVLC Caffe.

Run with Caffe's pycaffe, never in a process that imports firecaffe (both
register caffe.proto):

    source ~/.cache/caffe-oracle/caffe/env.sh
    $CAFFE_PY tests/layers/golden/make_golden.py

Each case is one layer fed by seeded inputs: a bottom that takes a gradient
comes from a Parameter layer (so Caffe computes its gradient without
force_backward, which Caffe refuses for index bottoms), an index or label bottom
from an Input layer. Non-loss tops get loss_weight 1 so that the layer runs its
backward; the top diffs are then overwritten with seeded values. One .npz per
case holds the layer's text, the inputs, the parameters, the tops, the top
diffs and the gradients Caffe computed.
"""
import os
import sys
import tempfile

import numpy as np

import caffe

HERE = os.path.dirname(os.path.abspath(__file__))

# kinds of bottoms: "data" takes a gradient; "index" and "label" do not.
# values: (kind, shape, how) with how one of
#   ("signed", scale): uniform magnitudes in [0.1, 2] * scale with random signs
#   ("positive", low, high): uniform in [low, high]
#   ("ints", high): integers in [0, high)
#   ("fixed", list): exactly these values
CASES = {
    "absval": ('type: "AbsVal"', [("data", (2, 3, 4), ("signed", 1))]),
    "argmax_sample_top2_values": ('type: "ArgMax" argmax_param { top_k: 2 out_max_val: true }',
                                  [("data", (3, 4, 2), ("signed", 1))]),
    "argmax_axis1_top2": ('type: "ArgMax" argmax_param { axis: 1 top_k: 2 }', [("data", (2, 5, 3), ("signed", 1))]),
    "argmax_ties": ('type: "ArgMax" argmax_param { top_k: 3 }', [("data", (2, 4), ("fixed", [1, 5, 5, 2, 3, 3, 0, 3]))]),
    "bnll": ('type: "BNLL"', [("data", (2, 3, 4), ("signed", 3))]),
    "batch_reindex": ('type: "BatchReindex"', [("data", (4, 3, 2), ("signed", 1)),
                                               ("index", (5,), ("fixed", [3, 0, 3, 1, 2]))]),
    "clip": ('type: "Clip" clip_param { min: -0.5 max: 0.7 }', [("data", (2, 3, 4), ("signed", 0.6))]),
    "contrastive": ('type: "ContrastiveLoss" contrastive_loss_param { margin: 2.5 }',
                    [("data", (6, 3, 1, 1), ("signed", 0.5)), ("data", (6, 3, 1, 1), ("signed", 0.5)),
                     ("label", (6, 1, 1, 1), ("fixed", [1, 0, 1, 0, 0, 0.7]))]),
    "contrastive_legacy": ('type: "ContrastiveLoss" contrastive_loss_param { margin: 3 legacy_version: true }',
                           [("data", (6, 3), ("signed", 0.5)), ("data", (6, 3), ("signed", 0.5)),
                            ("label", (6,), ("fixed", [1, 0, 1, 0, 0, 1]))]),
    "crop_default": ('type: "Crop"', [("data", (2, 3, 5, 4), ("signed", 1)), ("data", (2, 3, 3, 2), ("signed", 1))]),
    "crop_axis1_offsets": ('type: "Crop" crop_param { axis: 1 offset: 1 offset: 2 offset: 0 }',
                           [("data", (2, 4, 5, 4), ("signed", 1)), ("data", (1, 2, 3, 3), ("signed", 1))]),
    "elu": ('type: "ELU" elu_param { alpha: 0.4 }', [("data", (2, 3, 4), ("signed", 1))]),
    "elu_in_place": ('type: "ELU"', [("data", (2, 3, 4), ("signed", 1))], "in_place"),
    "embed": ('type: "Embed" embed_param { num_output: 4 input_dim: 5 }', [("index", (2, 3), ("ints", 5))]),
    "embed_no_bias": ('type: "Embed" embed_param { num_output: 3 input_dim: 4 bias_term: false }',
                      [("index", (5,), ("fixed", [3, 0, 3, 3, 1]))]),
    "exp": ('type: "Exp"', [("data", (2, 3, 4), ("signed", 1))]),
    "exp_base2": ('type: "Exp" exp_param { base: 2 scale: 0.5 shift: 0.3 }', [("data", (2, 3, 4), ("signed", 1))]),
    "filter": ('type: "Filter"', [("data", (5, 3), ("signed", 1)), ("data", (5, 2, 2), ("signed", 1)),
                                  ("index", (5, 1), ("fixed", [0, 1, 0, 2, 1]))], "two_tops"),
    "hinge_l1": ('type: "HingeLoss"', [("data", (4, 5), ("signed", 0.8)), ("label", (4,), ("ints", 5))]),
    "hinge_l2": ('type: "HingeLoss" hinge_loss_param { norm: L2 }',
                 [("data", (4, 5, 1, 1), ("signed", 0.8)), ("label", (4, 1, 1, 1), ("ints", 5))]),
    "im2col": ('type: "Im2col" convolution_param { kernel_size: 3 pad: 1 stride: 2 }',
               [("data", (2, 3, 5, 6), ("signed", 1))]),
    "im2col_rect_dilated": ('type: "Im2col" convolution_param { kernel_h: 2 kernel_w: 3 pad_w: 2 dilation: 2 }',
                            [("data", (1, 2, 6, 5), ("signed", 1))]),
    "infogain": ('type: "InfogainLoss" loss_param { ignore_label: 4 }',
                 [("data", (5, 6), ("signed", 1)), ("label", (5,), ("fixed", [1, 0, 4, 5, 2])),
                  ("label", (6, 6), ("positive", 0, 1))]),
    "infogain_spatial_prob": ('type: "InfogainLoss" loss_weight: 1 loss_weight: 0 loss_param { normalization: BATCH_SIZE }',
                              [("data", (2, 3, 2, 2), ("signed", 1)), ("label", (2, 1, 2, 2), ("ints", 3)),
                               ("label", (1, 1, 3, 3), ("positive", 0, 1))], "two_tops"),
    "log": ('type: "Log"', [("data", (2, 3, 4), ("positive", 0.2, 3))]),
    "log_base10": ('type: "Log" log_param { base: 10 scale: 2 shift: 0.5 }', [("data", (2, 3, 4), ("positive", 0.2, 3))]),
    "mvn": ('type: "MVN"', [("data", (2, 3, 3, 4), ("signed", 1))]),
    "mvn_across_mean_only": ('type: "MVN" mvn_param { across_channels: true normalize_variance: false }',
                             [("data", (2, 3, 2, 2), ("signed", 1))]),
    "mvn_across_eps": ('type: "MVN" mvn_param { across_channels: true eps: 0.01 }', [("data", (2, 5), ("signed", 1))]),
    "multinomial_logistic": ('type: "MultinomialLogisticLoss"',
                             [("data", (4, 5), ("positive", 0.05, 1)), ("label", (4, 1, 1, 1), ("ints", 5))]),
    "parameter": ('type: "Parameter" parameter_param { shape { dim: 2 dim: 3 } }', []),
    "prelu": ('type: "PReLU"', [("data", (2, 3, 2, 2), ("signed", 1))]),
    "prelu_shared": ('type: "PReLU" prelu_param { channel_shared: true }', [("data", (2, 3, 4), ("signed", 1))]),
    "prelu_in_place": ('type: "PReLU"', [("data", (2, 4, 3), ("signed", 1))], "in_place"),
    "power_square": ('type: "Power" power_param { power: 2 scale: 0.5 shift: -0.2 }', [("data", (2, 3, 4), ("signed", 1))]),
    "power_cube_no_shift": ('type: "Power" power_param { power: 3 scale: 1.5 }', [("data", (2, 3, 4), ("signed", 1))]),
    "power_sqrt": ('type: "Power" power_param { power: 0.5 scale: 2 shift: 1 }', [("data", (2, 3, 4), ("positive", 0.1, 2))]),
    "reduction_sum_all": ('type: "Reduction"', [("data", (2, 3, 4), ("signed", 1))]),
    "reduction_asum": ('type: "Reduction" reduction_param { operation: ASUM axis: 1 coeff: -0.5 }',
                       [("data", (2, 3, 4), ("signed", 1))]),
    "reduction_sumsq": ('type: "Reduction" reduction_param { operation: SUMSQ axis: -1 }',
                        [("data", (2, 3, 4), ("signed", 1))]),
    "reduction_mean": ('type: "Reduction" reduction_param { operation: MEAN axis: 2 coeff: 2 }',
                       [("data", (2, 3, 4, 2), ("signed", 1))]),
    "spp_max3": ('type: "SPP" spp_param { pyramid_height: 3 }', [("data", (2, 2, 8, 7), ("signed", 1))]),
    "spp_ave2": ('type: "SPP" spp_param { pyramid_height: 2 pool: AVE }', [("data", (2, 3, 5, 7), ("signed", 1))]),
    "spp_height1": ('type: "SPP" spp_param { pyramid_height: 1 }', [("data", (2, 3, 4, 3), ("signed", 1))]),
    "sigmoid_cross_entropy": ('type: "SigmoidCrossEntropyLoss"',
                              [("data", (3, 4, 2), ("signed", 3)), ("label", (3, 4, 2), ("positive", 0, 1))]),
    "sigmoid_cross_entropy_ignore": ('type: "SigmoidCrossEntropyLoss" loss_param { ignore_label: -1 normalization: VALID }',
                                     [("data", (3, 4), ("signed", 3)),
                                      ("label", (3, 4), ("fixed", [1, 0, -1, 1, 0, -1.5, 1, 1, 0, 0, -1, 1]))]),
    "swish": ('type: "Swish" swish_param { beta: 2.5 }', [("data", (2, 3, 4), ("signed", 1))]),
    "threshold": ('type: "Threshold" threshold_param { threshold: 0.2 }', [("data", (2, 3, 4), ("signed", 1))]),
    "tile": ('type: "Tile" tile_param { tiles: 3 }', [("data", (2, 3, 2), ("signed", 1))]),
    "tile_axis0": ('type: "Tile" tile_param { axis: -3 tiles: 2 }', [("data", (2, 3, 2), ("signed", 1))]),
}
FORWARD_ONLY = {"ArgMax", "Threshold"}
LOSSES = {"ContrastiveLoss", "HingeLoss", "InfogainLoss", "MultinomialLogisticLoss", "SigmoidCrossEntropyLoss"}


def values(gen, shape, how):
    kind = how[0]
    if kind == "signed":
        return gen.uniform(0.1, 2.0, shape) * gen.choice([-1.0, 1.0], shape) * how[1]
    if kind == "positive":
        return gen.uniform(how[1], how[2], shape)
    if kind == "ints":
        return gen.integers(0, how[1], shape).astype(float)
    return np.array(how[1], dtype=float).reshape(shape)


def dims(shape):
    return "shape { " + " ".join(f"dim: {d}" for d in shape) + " }"


def net_text(layer, bottoms, tops, loss, in_place):
    lines = []
    for i, (kind, shape, _) in enumerate(bottoms):
        if kind == "data":
            lines.append(f'layer {{ name: "in{i}" type: "Parameter" top: "b{i}" parameter_param {{ {dims(shape)} }} }}')
        else:
            lines.append(f'layer {{ name: "in{i}" type: "Input" top: "b{i}" input_param {{ {dims(shape)} }} }}')
    wiring = " ".join(f'bottom: "b{i}"' for i in range(len(bottoms)))
    wiring += " " + " ".join(f'top: "{"b0" if in_place else f"t{k}"}"' for k in range(tops))
    if loss:
        wiring += " loss_weight: 1" * tops
    lines.append(f'layer {{ name: "layer" {layer} {wiring} }}')
    return "\n".join(lines) + "\n"


def make(name, case, seed):
    layer, bottoms = case[0], case[1]
    flags = case[2:] if len(case) > 2 else ()
    kind = layer.split('"')[1]
    tops = 2 if "two_tops" in flags else 1
    in_place = "in_place" in flags
    backward = kind not in FORWARD_ONLY
    gen = np.random.default_rng(seed)
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(net_text(layer, bottoms, tops, backward and kind not in LOSSES, in_place))
    net = caffe.Net(f.name, caffe.TRAIN)
    os.unlink(f.name)
    out = {"layer": np.array(layer), "kinds": np.array([b[0] for b in bottoms] or [""]),
           "in_place": np.array(in_place), "backward": np.array(backward), "num_top": np.array(tops)}
    for i, (bkind, shape, how) in enumerate(bottoms):
        x = values(gen, shape, how).astype(np.float32)
        target = net.params[f"in{i}"][0] if bkind == "data" else net.blobs[f"b{i}"]
        target.data[...] = x
        out[f"bottom{i}"] = x
    params = net.params["layer"] if "layer" in net.params else []
    for j, p in enumerate(params):
        low = 0.05 if kind == "PReLU" else -1.0
        p.data[...] = gen.uniform(low, 1.0, p.data.shape)
        out[f"param{j}"] = p.data.copy()
    net.forward()
    top_names = ["b0"] if in_place else [f"t{k}" for k in range(tops)]
    for k, t in enumerate(top_names):
        out[f"top{k}"] = net.blobs[t].data.copy()
    if backward:
        for k, t in enumerate(top_names):
            blob = net.blobs[t]
            blob.diff[...] = 1.7 if kind in LOSSES and k == 0 else gen.standard_normal(blob.diff.shape)
            out[f"top_diff{k}"] = blob.diff.copy()
        net.backward()
        for i, (bkind, _, _) in enumerate(bottoms):
            if bkind == "data":
                out[f"bottom_diff{i}"] = net.params[f"in{i}"][0].diff.copy()
        for j, p in enumerate(params):
            out[f"param_diff{j}"] = p.diff.copy()
    np.savez_compressed(os.path.join(HERE, f"{name}.npz"), **out)


def main():
    caffe.set_mode_cpu()
    names = sys.argv[1:] or sorted(CASES)
    for seed, name in enumerate(sorted(CASES)):
        if name in names:
            make(name, CASES[name], seed)
            print("made", name)


if __name__ == "__main__":
    main()
