"""The .fcz container: exact round trips of every coding, loading by layer name into a Net, and
one clear error for a file that is truncated, damaged, newer, or for another net."""
import numpy as np
import pytest

import firecaffe
from firecaffe import fcz
from firecaffe.errors import FirecaffeError

NET = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 6 dim: 6 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } bias_filler { type: "uniform" } } }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.1 } } }
"""


def sparse_shared(gen, shape, density, k):
    values = gen.choice(gen.normal(0, 0.1, k).astype(np.float32), size=shape)
    return np.where(gen.random(shape) < density, values, 0).astype(np.float32)


def test_every_coding_round_trips_exactly():
    gen = np.random.default_rng(1)
    dense = gen.normal(size=(7, 3, 2)).astype(np.float32)
    pruned = np.where(gen.random((50, 40)) < 0.1, dense.ravel()[0] + gen.normal(size=(50, 40)), 0).astype(np.float32)
    shared = sparse_shared(gen, (64, 30), 0.3, 20)
    layers = [("raw", "X", [(dense, {})]),
              ("sparse-f", "X", [(pruned, {})]),
              ("sparse-q", "X", [(shared, {"bits": 5}), (shared, {"bits": 5, "width": 2})]),
              ("dense-q", "X", [(np.where(shared == 0, 1.5, shared), {"bits": 6})]),
              ("empty", "X", [(np.zeros((3, 4), np.float32), {"bits": 3})])]
    data, costs = fcz.encode("n", layers)
    name, back = fcz.parse(data)
    assert name == "n" and [entry[0] for entry in back] == [entry[0] for entry in layers]
    for (_, _, arrays), (_, _, decoded) in zip(layers, back):
        for (array, _), got in zip(arrays, decoded):
            assert got.dtype == np.float32 and got.shape == array.shape
            np.testing.assert_array_equal(got, array)
    assert sum(cost["stored"] for cost in costs) <= len(data)


def test_quantizing_coder_shares_at_most_two_to_the_bits_values():
    gen = np.random.default_rng(2)
    weights = np.where(gen.random((40, 40)) < 0.4, gen.normal(size=(40, 40)), 0).astype(np.float32)
    _, [(_, _, [got])] = fcz.parse(fcz.encode("n", [("w", "X", [(weights, {"bits": 3})])])[0])
    assert np.unique(got[got != 0]).size <= 7                # 2**3 codes, one of them the zero
    np.testing.assert_array_equal(got == 0, weights == 0)     # pruned stay pruned, kept stay kept
    assert np.abs(got - weights).max() < np.abs(weights).max() / 2


def test_net_loads_fcz_by_layer_name(tmp_path):
    proto = tmp_path / "net.prototxt"
    proto.write_text(NET)
    net = firecaffe.Net(str(proto), phase=firecaffe.TEST)
    gen = np.random.default_rng(3)
    want = {"conv": [sparse_shared(gen, (4, 3, 3, 3), 0.5, 30), gen.normal(size=4).astype(np.float32)],
            "fc": [sparse_shared(gen, (5, 64), 0.2, 9), gen.normal(size=5).astype(np.float32)]}
    path = tmp_path / "w.fcz"
    fcz.write(str(path), "tiny", [(name, "X", [(arrays[0], {"bits": 8}), (arrays[1], {})])
                                  for name, arrays in want.items()])
    loaded = firecaffe.Net(str(proto), weights=str(path), phase=firecaffe.TEST)
    for name, arrays in want.items():
        for blob, array in zip(loaded.params[name], arrays):
            np.testing.assert_array_equal(blob.data, array)
    assert net.params["conv"][0].data.shape == (4, 3, 3, 3)


def test_fcz_for_another_net_names_the_layer(tmp_path):
    proto = tmp_path / "net.prototxt"
    proto.write_text(NET)
    path = tmp_path / "other.fcz"
    fcz.write(str(path), "other", [("fc", "InnerProduct", [(np.ones((5, 65), np.float32), {}),
                                                                (np.ones(5, np.float32), {})])])
    with pytest.raises(FirecaffeError, match="layer 'fc'.*shape mismatch"):
        firecaffe.Net(str(proto), weights=str(path), phase=firecaffe.TEST)


@pytest.fixture
def good(tmp_path):
    gen = np.random.default_rng(4)
    path = tmp_path / "w.fcz"
    fcz.write(str(path), "n", [("fc", "X", [(sparse_shared(gen, (30, 30), 0.3, 12), {"bits": 4})])])
    return path


def test_truncated_file_is_named_truncated(good):
    data = good.read_bytes()
    for cut in (5, 30, len(data) - 1):
        good.write_bytes(data[:cut])
        with pytest.raises(fcz.FczError, match=f"{good}: truncated"):
            fcz.read(str(good))


def test_damaged_byte_fails_the_checksum(good):
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0x10
    good.write_bytes(bytes(data))
    with pytest.raises(fcz.FczError, match="corrupt: its SHA-256"):
        fcz.read(str(good))


def test_newer_version_and_other_files_are_refused(good, tmp_path):
    data = bytearray(good.read_bytes())
    data[8] = 9
    good.write_bytes(bytes(data))
    with pytest.raises(fcz.FczError, match="format version 9"):
        fcz.read(str(good))
    other = tmp_path / "x.fcz"
    other.write_bytes(b"name: 'not binary'\n" * 4)
    with pytest.raises(fcz.FczError, match="not a .fcz file"):
        fcz.read(str(other))
