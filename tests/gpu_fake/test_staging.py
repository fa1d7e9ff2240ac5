"""HDF5Data and Data on a (stand-in) GPU read one batch ahead through pinned memory:
the batches, the read position and the random generator are exactly those of the
CPU path, whatever happens between two forwards."""
import h5py
import numpy as np
import pytest
from google.protobuf import text_format

from firecaffe.core import backend
from firecaffe.core.blob import Blob
from firecaffe.data import write_lmdb
from firecaffe.errors import DataError
from firecaffe.ops import create_layer
from firecaffe.engine.net import Net
from firecaffe.proto import caffe_pb2
from firecaffe.engine.testing import layer_param


@pytest.fixture
def h5_source(tmp_path):
    """Two files of 7 and 6 samples; sample i holds i in every value of 'data' and 'label'."""
    names = []
    for k, (start, n) in enumerate(((0, 7), (7, 6))):
        path = tmp_path / f"part{k}.h5"
        index = np.arange(start, start + n, dtype=np.float32)
        with h5py.File(path, "w") as f:
            f["data"] = index[:, None, None] * np.ones((1, 2, 3), np.float32)
            f["label"] = index
        names.append(path.name)
    (tmp_path / "list.txt").write_text("\n".join(names) + "\n")
    return str(tmp_path / "list.txt")


@pytest.fixture
def lmdb_source(tmp_path):
    images = np.random.default_rng(3).integers(0, 255, (13, 3, 6, 6)).astype(np.uint8)
    write_lmdb(tmp_path / "db", images, np.arange(13))
    return str(tmp_path / "db")


def hdf5_text(source, shuffle=True, batch=3):
    return (f'name: "data" type: "HDF5Data" top: "data" top: "label" '
            f'hdf5_data_param {{ source: "{source}" batch_size: {batch} shuffle: {str(shuffle).lower()} }}')


def lmdb_text(source):
    return (f'name: "data" type: "Data" top: "data" top: "label" data_param {{ source: "{source}" '
            'batch_size: 4 } transform_param { mirror: true crop_size: 4 scale: 0.5 }')


def make(text, shard=(0, 1), seed=7):
    backend.seed(seed)
    layer = create_layer(layer_param(text), phase="TRAIN", dtype=np.float32)
    layer.shard = shard
    top = [Blob((), np.float32, name=n) for n in ("data", "label")]
    layer.setup([], top)
    return layer, top


def run(layer, top, n, between=None):
    """n forwards: [(host copies of the tops, get_state(), generator state)]."""
    out = []
    for _ in range(n):
        layer.forward([], top)
        out.append(([backend.to_host(t.data).copy() for t in top], layer.get_state(),
                    backend.rng().bit_generator.state))
        if between is not None:
            between()
    return out


def cpu_reference(text, n, shard=(0, 1), between=None):
    backend.set_mode_cpu()
    layer, top = make(text, shard)
    assert isinstance(top[0].data, np.ndarray)
    return run(layer, top, n, between)


def assert_same(got, want):
    assert len(got) == len(want)
    for k, ((g_tops, g_state, g_rng), (w_tops, w_state, w_rng)) in enumerate(zip(got, want)):
        for g, w in zip(g_tops, w_tops):
            np.testing.assert_array_equal(g, w, err_msg=f"batch {k}")
        assert g_state == w_state, f"read position after batch {k}"
        assert g_rng == w_rng, f"random generator after batch {k}"


@pytest.mark.parametrize("shuffle", [False, True])
def test_hdf5_batches_come_through_pinned_memory_one_ahead_as_on_the_cpu(fake_gpu, h5_source, shuffle):
    text = hdf5_text(h5_source, shuffle)
    with backend_cpu():
        want = cpu_reference(text, 11, shard=(1, 2))
    layer, top = make(text, shard=(1, 2))
    assert isinstance(top[0].data, fake_gpu.ndarray)
    assert_same(run(layer, top, 11), want)
    assert fake_gpu.counts["set"] == 2                    # only the first batch is read when due
    assert fake_gpu.counts["set_async"] == 2 * 11         # every other one, one forward ahead
    (stream,) = fake_gpu.streams
    assert stream.non_blocking and fake_gpu.null_stream.waits == 10
    assert layer.cursor.position == 11 * 6                # staging never moves the read position


def test_data_layer_random_crop_and_mirror_draw_as_on_the_cpu(fake_gpu, lmdb_source):
    text = lmdb_text(lmdb_source)
    with backend_cpu():
        want = cpu_reference(text, 8)
    layer, top = make(text)
    assert_same(run(layer, top, 8), want)
    assert fake_gpu.counts["set_async"] == 2 * 8


def test_other_draws_between_forwards_make_the_staged_batch_read_again(fake_gpu, lmdb_source):
    # as a test net's Data layer or a CPU Dropout drawing from the same generator would
    text = lmdb_text(lmdb_source)

    def draw():
        backend.rng().random(5)
    with backend_cpu():
        want = cpu_reference(text, 5, between=draw)
    layer, top = make(text)
    assert_same(run(layer, top, 5, between=draw), want)
    assert fake_gpu.counts["set"] == 2 * 5                # every staged batch was stale


def test_state_names_the_next_batch_to_consume_and_restores_exactly(fake_gpu, h5_source):
    text = hdf5_text(h5_source)
    with backend_cpu():
        want = cpu_reference(text, 9)
    layer, top = make(text)
    run(layer, top, 4)
    state, rng = layer.get_state(), backend.rng().bit_generator.state
    assert state == want[3][1]
    # a fresh layer restored from the state, as after a snapshot
    fresh, fresh_top = make(text, seed=99)
    fresh.set_state(state)
    backend.rng().bit_generator.state = rng
    assert_same(run(fresh, fresh_top, 5), want[4:])
    # the running layer, sent back two batches: its staged batch is dropped
    layer.set_state(want[1][1])
    backend.rng().bit_generator.state = want[1][2]
    assert_same(run(layer, top, 3), want[2:5])


def test_a_bad_sample_fails_the_forward_that_needs_it_not_the_one_before(fake_gpu, h5_source, monkeypatch):
    layer, top = make(hdf5_text(h5_source, shuffle=False))
    read = layer.source.read

    def failing(indices, outs):
        if 7 in indices:
            raise DataError("part1.h5: cannot read samples (truncated)")
        read(indices, outs)
    monkeypatch.setattr(layer.source, "read", failing)
    run(layer, top, 2)                                    # samples 0..5; the staged read of 6..8 failed
    assert layer.get_state()["position"] == 6
    with pytest.raises(DataError, match="layer 'data'.*truncated"):
        layer.forward([], top)
    assert layer.get_state()["position"] == 9          # as on the CPU: the cursor moves, then reads


def test_a_net_on_the_gpu_reads_the_same_batches(fake_gpu, h5_source):
    text = f"name: 'n' layer {{ {hdf5_text(h5_source)} }}"

    def batches():
        backend.seed(5)
        net = Net(text_format.Parse(text, caffe_pb2.NetParameter()), phase="TRAIN")
        out = []
        for _ in range(6):
            net.forward_range()
            out.append([backend.to_host(net.blobs[n].data).copy() for n in ("data", "label")])
        return out, net.layers[0].get_state()
    got, state = batches()
    with backend_cpu():
        want, want_state = batches()
    assert state == want_state
    for g, w in zip(got, want):
        for a, b in zip(g, w):
            np.testing.assert_array_equal(a, b)


def test_the_cpu_path_stages_nothing(h5_source):
    backend.set_mode_cpu()
    layer, top = make(hdf5_text(h5_source))
    layer.forward([], top)
    assert not hasattr(layer, "_stager")


class backend_cpu:
    """Run a block in CPU mode, then return to the (fake) GPU."""

    def __enter__(self):
        self.state = dict(backend._state)
        backend.set_mode_cpu()

    def __exit__(self, *exc):
        backend._state.update(self.state)
