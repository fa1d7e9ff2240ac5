"""RNN, LSTM and LSTMUnit: gradients against float64 finite differences, and
values against real Caffe (fixtures made by golden_data/make_golden.py)."""
import os

import numpy as np
import pytest

from firecaffe.core.blob import Blob
from firecaffe.engine.testing import check_gradient, layer_param, make_layer
from firecaffe.errors import FirecaffeError
from firecaffe.ops import create_layer

GOLDEN = os.path.join(os.path.dirname(__file__), "golden_data")
T, N, D, H = 3, 2, 4, 3
FILL = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }'


def recurrent(kind, expose=False):
    return (f'type: "{kind}" recurrent_param {{ num_output: {H} {FILL} '
            f'expose_hidden: {"true" if expose else "false"} }}')


def inputs(seed=0, static=False):
    gen = np.random.default_rng(seed)
    x = gen.standard_normal((T, N, D))
    cont = np.array([[0, 0], [1, 1], [1, 0]], float)     # cont_1 = 0: the carried state does not matter
    return [x, cont] + ([gen.standard_normal((N, 5))] if static else [])


@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
@pytest.mark.parametrize("static", [False, True])
def test_backward_matches_finite_differences(kind, static):
    layer, bottom, top = make_layer(recurrent(kind), inputs(static=static))
    check_gradient(layer, bottom, top, check_bottom=[0, 2] if static else [0])


@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
def test_exposed_hidden_state_gradients_of_x_and_params(kind):
    gen = np.random.default_rng(1)
    states = [gen.standard_normal((1, N, H)) for _ in range(1 if kind == "RNN" else 2)]
    layer, bottom, top = make_layer(recurrent(kind, expose=True), [inputs()[0], np.ones((T, N))] + states,
                                    num_top=1 + len(states))
    # Caffe ignores the diffs of the hT/cT tops, so they carry no weight here
    weights = [gen.standard_normal(top[0].shape)] + [np.zeros(t.shape) for t in top[1:]]
    check_gradient(layer, bottom, top, check_bottom=[0], top_weights=weights)


def test_lstm_unit_backward_matches_finite_differences():
    gen = np.random.default_rng(2)
    bottoms = [gen.standard_normal((1, 4, H)), gen.standard_normal((1, 4, 4 * H)), np.array([[0, 1, 1, 0.]])]
    layer, bottom, top = make_layer('type: "LSTMUnit"', bottoms, num_top=2)
    check_gradient(layer, bottom, top, check_bottom=[0, 1])


@pytest.mark.parametrize("kind, shapes", [
    ("RNN", [(H, D), (H,), (H, H), (H, H), (H,)]),
    ("LSTM", [(4 * H, D), (4 * H,), (4 * H, H)])])
def test_parameter_blobs_have_caffes_shapes_and_order(kind, shapes):
    layer, _, _ = make_layer(recurrent(kind), inputs())
    assert [b.shape for b in layer.blobs] == shapes
    layer, _, _ = make_layer(recurrent(kind), inputs(static=True))
    assert [b.shape for b in layer.blobs] == shapes[:2] + [(shapes[0][0], 5)] + shapes[2:]


@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
def test_state_carries_over_between_forwards_unless_cont_is_zero(kind):
    x, cont = inputs()
    layer, bottom, top = make_layer(recurrent(kind), [x, np.ones((T, N))])
    layer.forward(bottom, top)
    first = top[0].data.copy()
    layer.forward(bottom, top)
    assert not np.allclose(top[0].data, first)           # started from h_T of the first batch
    bottom[1].data[0] = 0
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, first)


def test_backpropagating_to_cont_is_refused():
    layer, bottom, top = make_layer(recurrent("LSTM"), inputs())
    layer.forward(bottom, top)
    with pytest.raises(FirecaffeError, match="sequence indicators"):
        layer.backward(top, [True, True], bottom)
    assert not layer.allow_force_backward(1) and layer.allow_force_backward(0)


def test_bad_shapes_name_the_layer():
    with pytest.raises(FirecaffeError, match=r"layer 'test' \(LSTM\): cont must have shape"):
        make_layer(recurrent("LSTM"), [np.zeros((T, N, D)), np.zeros((T, N + 1))])
    with pytest.raises(FirecaffeError, match="num_output must be positive"):
        make_layer('type: "RNN"', inputs())


# --- against Caffe ---------------------------------------------------------------
CASES = ["rnn", "rnn_static", "rnn_exposed", "lstm", "lstm_static", "lstm_exposed", "lstm_unit"]


@pytest.mark.parametrize("case", CASES)
def test_matches_caffe(case):
    from firecaffe.proto import caffe_pb2
    from google.protobuf import text_format
    data = np.load(os.path.join(GOLDEN, f"{case}.npz"))
    net = text_format.Parse(str(data["prototxt"]), caffe_pb2.NetParameter())
    lp = net.layer[1]
    names, tops = list(lp.bottom), list(lp.top)
    batches = sorted({k.split("_")[0] for k in data.files if k.startswith("in")})
    bottom = [Blob(data[f"in0_{n}"].shape, np.float32, name=n) for n in names]
    top = [Blob((), np.float32, name=t) for t in tops]
    layer = create_layer(lp, phase="TRAIN", dtype=np.float32)
    layer.setup(bottom, top)
    params = [data[f"param{k}"] for k in range(len(layer.blobs))]
    assert [b.shape for b in layer.blobs] == [p.shape for p in params]
    assert f"param{len(layer.blobs)}" not in data.files
    for blob, value in zip(layer.blobs, params):
        blob.data[...] = value
    for b, batch in enumerate(batches):
        for blob, n in zip(bottom, names):
            blob.data[...] = data[f"{batch}_{n}"]
        layer.reshape(bottom, top)
        layer.forward(bottom, top)
        for blob, t in zip(top, tops):
            np.testing.assert_allclose(blob.data, data[f"out{b}_{t}"], rtol=1e-5, atol=1e-6,
                                       err_msg=f"{case}: top {t} of forward {b}")
    for blob, t in zip(top, tops):
        blob.diff[...] = data[f"topdiff_{t}"]
    for blob in bottom + layer.blobs:
        blob.diff[...] = 0
    layer.backward(top, [layer.allow_force_backward(i) for i in range(len(bottom))], bottom)
    for blob, n in zip(bottom, names):
        np.testing.assert_allclose(blob.diff, data[f"diff_{n}"], rtol=1e-4, atol=1e-6,
                                   err_msg=f"{case}: diff of bottom {n}")
    for k, blob in enumerate(layer.blobs):
        np.testing.assert_allclose(blob.diff, data[f"paramdiff{k}"], rtol=1e-4, atol=1e-5,
                                   err_msg=f"{case}: diff of param {k}")
