"""MemoryData (pycaffe's set_input_arrays) and HDF5Output."""
import h5py
import numpy as np
import pytest

import firecaffe
from firecaffe.core.blob import Blob
from firecaffe.engine.testing import layer_param, make_layer
from firecaffe.errors import DataError, PrototxtError
from firecaffe.ops import create_layer

MEMORY = 'type: "MemoryData" memory_data_param { batch_size: 2 channels: 1 height: 2 width: 3 }'


def memory_layer(shard=(0, 1), text=MEMORY):
    layer = create_layer(layer_param(f'name: "mem" {text}'), dtype=np.float32)
    layer.shard = shard
    top = [Blob(), Blob()]
    layer.setup([], top)
    return layer, top


def arrays(n=6):
    data = np.arange(n * 6, dtype=np.float32).reshape(n, 1, 2, 3)
    return data, np.arange(n, dtype=np.float32) + 10


def test_memory_data_steps_through_the_arrays_and_wraps():
    layer, top = memory_layer()
    assert top[0].shape == (2, 1, 2, 3) and top[1].shape == (2,)
    data, labels = arrays()
    layer.set_input_arrays(data, labels[:, None, None, None])
    got = []
    for _ in range(4):
        layer.forward([], top)
        assert top[1].shape == (2, 1, 1, 1)                 # as Caffe's, from the first forward on
        got.append(top[1].data.ravel().copy())
    np.testing.assert_array_equal(np.concatenate(got), [10, 11, 12, 13, 14, 15, 10, 11])
    np.testing.assert_array_equal(top[0].data, data[:2])


def test_memory_data_two_ranks_read_one_global_batch():
    data, labels = arrays(8)
    whole, top = memory_layer(text=MEMORY.replace("batch_size: 2", "batch_size: 4"))
    whole.set_input_arrays(data, labels)
    ranks = [memory_layer(shard=(r, 2)) for r in range(2)]
    for layer, _ in ranks:
        layer.set_input_arrays(data, labels)
    for _ in range(3):
        whole.forward([], top)
        parts = []
        for layer, t in ranks:
            layer.forward([], t)
            parts.append(t[1].data.copy())
        np.testing.assert_array_equal(np.concatenate(parts), top[1].data)


def test_memory_data_checks_what_it_is_given():
    layer, top = memory_layer()
    with pytest.raises(DataError, match=r"before the first forward"):
        layer.forward([], top)
    data, labels = arrays()
    with pytest.raises(DataError, match=r"data must have shape \(n, 1, 2, 3\)"):
        layer.set_input_arrays(data.reshape(6, 6), labels)
    with pytest.raises(DataError, match=r"labels must have shape \(6,\)"):
        layer.set_input_arrays(data, labels[:5])
    with pytest.raises(DataError, match=r"positive multiple of batch_size \(2\)"):
        layer.set_input_arrays(data[:5], labels[:5])
    with pytest.raises(PrototxtError, match="must all be set"):
        memory_layer(text='type: "MemoryData" memory_data_param { batch_size: 2 }')


def test_hdf5_output_writes_4d_datasets_and_appends(tmp_path):
    path = tmp_path / "out.h5"
    gen = np.random.default_rng(0)
    x, y = gen.standard_normal((2, 3)), np.array([1.0, 2.0])
    layer, bottom, _ = make_layer(f'type: "HDF5Output" hdf5_output_param {{ file_name: "{path}" }}',
                                  [x, y], num_top=0)
    layer.forward(bottom, [])
    with h5py.File(path, "r") as f:
        assert f["data"].shape == (2, 3, 1, 1) and f["label"].shape == (2, 1, 1, 1)
        np.testing.assert_array_equal(f["data"][:, :, 0, 0], x)
    bottom[0].data[...] *= 2
    layer.forward(bottom, [])
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["data"][2:, :, 0, 0], 2 * x)
        np.testing.assert_array_equal(f["label"][:, 0, 0, 0], [1, 2, 1, 2])


def test_hdf5_output_in_a_net_next_to_memory_data(tmp_path):
    path = tmp_path / "feat.h5"
    proto = tmp_path / "net.prototxt"
    proto.write_text(f"""
layer {{ name: "mem" {MEMORY} top: "data" top: "label" }}
layer {{ name: "out" type: "HDF5Output" bottom: "data" bottom: "label" hdf5_output_param {{ file_name: "{path}" }} }}
""")
    net = firecaffe.Net(str(proto), firecaffe.TEST)
    data, labels = arrays(4)
    net.layers[0].set_input_arrays(data, labels)
    net.forward()
    net.forward()
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["data"][:], data)
        np.testing.assert_array_equal(f["label"][:, 0, 0, 0], labels)


def test_hdf5_output_under_mpi_writes_one_file_per_rank(tmp_path):
    param = layer_param(f'name: "out" type: "HDF5Output" hdf5_output_param {{ file_name: "{tmp_path}/f.h5" }}')
    for rank in range(2):
        layer = create_layer(param, dtype=np.float32)
        layer.shard = (rank, 2)
        bottom = [Blob((2, 3)), Blob((2,))]
        bottom[0].data[...] = rank
        layer.setup(bottom, [])
        layer.forward(bottom, [])
    for rank in range(2):
        with h5py.File(tmp_path / f"f.rank{rank}.h5", "r") as f:
            assert np.all(f["data"][:] == rank)
    assert not (tmp_path / "f.h5").exists()
