import os

import h5py
import numpy as np
import pytest

from firecaffe.core import backend
from firecaffe.core.blob import Blob
from firecaffe.data import write_lmdb
from firecaffe.errors import DataError, PrototxtError
from firecaffe.ops import create_layer
from firecaffe.engine.testing import layer_param, make_layer

from tests import _required


def data_layer(text, num_top=2, shard=(0, 1), phase="TRAIN", seed=7):
    """Set up a data layer as the net does: shard first, then setup."""
    backend.seed(seed)
    param = layer_param(text)
    param.name = param.name or "data"
    layer = create_layer(param, phase=phase, dtype=np.float64)
    layer.shard = shard
    top = [Blob((), np.float64, name=f"top{i}") for i in range(num_top)]
    layer.setup([], top)
    return layer, top


def batches(layer, top, n):
    out = []
    for _ in range(n):
        layer.forward([], top)
        out.append([t.data.copy() for t in top])
    return out


# --- Input and DummyData ---------------------------------------------------------

def test_input_one_shape_per_top_or_one_for_all():
    _, _, top = make_layer('type: "Input" input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } }',
                           [], num_top=2)
    assert [t.shape for t in top] == [(2, 3), (2,)]
    _, _, top = make_layer('type: "Input" input_param { shape { dim: 4 dim: 1 dim: 5 } }', [], num_top=2)
    assert [t.shape for t in top] == [(4, 1, 5)] * 2


def test_input_rejects_wrong_number_of_shapes():
    with pytest.raises(PrototxtError, match="2 shapes for 3 tops"):
        make_layer('type: "Input" input_param { shape { dim: 1 } shape { dim: 2 } }', [], num_top=3)


def test_dummy_data_shapes_and_constant_fill():
    layer, _, top = make_layer('type: "DummyData" dummy_data_param { shape { dim: 2 dim: 3 } '
                               'shape { dim: 2 } data_filler { type: "constant" value: 1.5 } }', [], num_top=2)
    assert [t.shape for t in top] == [(2, 3), (2,)]
    assert np.all(top[0].data == 1.5) and np.all(top[1].data == 1.5)
    assert layer.is_data


def test_dummy_data_legacy_dims_default_to_zeros():
    _, _, top = make_layer('type: "DummyData" dummy_data_param { num: 2 channels: 3 height: 4 width: 5 '
                           'num: 2 channels: 1 height: 1 width: 1 }', [], num_top=2)
    assert [t.shape for t in top] == [(2, 3, 4, 5), (2, 1, 1, 1)]
    assert not top[0].data.any()


def test_dummy_data_refills_only_random_fillers():
    layer, bottom, top = make_layer(
        'type: "DummyData" dummy_data_param { shape { dim: 3 } data_filler { type: "gaussian" } '
        'data_filler { type: "constant" value: 2 } }', [], num_top=2)
    first = top[0].data.copy()
    top[1].data[...] = 7                        # a constant top is filled once, at setup
    layer.forward(bottom, top)
    assert not np.array_equal(first, top[0].data)
    assert np.all(top[1].data == 7)


# --- HDF5Data ----------------------------------------------------------------------

def _write_h5(path, start, n):
    with h5py.File(path, "w") as f:
        index = np.arange(start, start + n, dtype=np.float32)
        f["data"] = np.broadcast_to(index[:, None, None], (n, 2, 3)).copy()
        f["label"] = index


@pytest.fixture
def h5list(tmp_path):
    """Two files, 5 and 7 samples: sample i holds the value i everywhere."""
    (tmp_path / "h5").mkdir()
    _write_h5(tmp_path / "h5" / "a.h5", 0, 5)
    _write_h5(tmp_path / "h5" / "b.h5", 5, 7)
    listing = tmp_path / "h5" / "train.txt"
    listing.write_text("a.h5\nb.h5\n\n")
    return listing


def hdf5(source, batch, shuffle=False, shard=(0, 1)):
    text = (f'type: "HDF5Data" top: "data" top: "label" hdf5_data_param {{ source: "{source}" '
            f'batch_size: {batch} shuffle: {"true" if shuffle else "false"} }}')
    return data_layer(text, shard=shard)


def test_hdf5_tops_take_the_datasets_shapes(h5list):
    layer, top = hdf5(h5list, 4)
    assert [t.shape for t in top] == [(4, 2, 3), (4,)]
    assert layer.is_data


def test_hdf5_batches_run_across_files_and_wrap(h5list):
    layer, top = hdf5(h5list, 5)
    labels = [b[1].tolist() for b in batches(layer, top, 3)]
    assert labels == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 0, 1, 2]]
    layer.forward([], top)
    np.testing.assert_array_equal(top[0].data[:, 1, 2], [3, 4, 5, 6, 7])


def test_hdf5_resolves_paths_next_to_the_list_file(h5list, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    layer, top = hdf5(h5list, 2)
    assert layer.source.files[0] == os.path.join(str(h5list.parent), "a.h5")


@pytest.mark.parametrize("shuffle", [False, True])
def test_hdf5_three_ranks_read_what_one_rank_reads(h5list, shuffle):
    one, top = hdf5(h5list, 6, shuffle)
    whole = [b[1] for b in batches(one, top, 5)]          # 30 samples: wraps over 12 twice
    ranks = [hdf5(h5list, 2, shuffle, shard=(r, 3)) for r in range(3)]
    parts = [[b[1] for b in batches(layer, t, 5)] for layer, t in ranks]
    for step in range(5):
        np.testing.assert_array_equal(whole[step], np.concatenate([p[step] for p in parts]))


def test_hdf5_shuffle_reads_every_sample_once_per_epoch(h5list):
    layer, top = hdf5(h5list, 4, shuffle=True)
    epoch = np.concatenate([b[1] for b in batches(layer, top, 3)])
    assert sorted(epoch.tolist()) == list(range(12))
    assert epoch.tolist() != list(range(12))
    following = np.concatenate([b[1] for b in batches(layer, top, 3)])
    assert sorted(following.tolist()) == list(range(12)) and not np.array_equal(epoch, following)


@pytest.mark.parametrize("shuffle", [False, True])
def test_hdf5_state_resumes_reading_exactly(h5list, shuffle):
    layer, top = hdf5(h5list, 5, shuffle, shard=(1, 2))
    batches(layer, top, 3)
    state = layer.get_state()
    assert state == __import__("json").loads(__import__("json").dumps(state))
    expected = batches(layer, top, 4)
    resumed, rtop = hdf5(h5list, 5, shuffle, shard=(1, 2))
    resumed.set_state(state)
    for want, got in zip(expected, batches(resumed, rtop, 4)):
        np.testing.assert_array_equal(want[0], got[0])


def test_hdf5_missing_list_or_file_names_the_path(h5list, tmp_path):
    with pytest.raises(DataError, match="nothere.txt"):
        hdf5(tmp_path / "nothere.txt", 2)
    bad = tmp_path / "bad.txt"
    bad.write_text("h5/a.h5\nh5/missing.h5\n")
    with pytest.raises(DataError, match="missing.h5"):
        hdf5(bad, 2)


def test_hdf5_missing_dataset_names_file_and_dataset(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["data"] = np.zeros((3, 2))
    (tmp_path / "l.txt").write_text("x.h5\n")
    with pytest.raises(DataError, match=r"x\.h5: no dataset 'label'"):
        hdf5(tmp_path / "l.txt", 2)


def test_hdf5_inconsistent_lengths_and_corrupt_file(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["data"], f["label"] = np.zeros((3, 2)), np.zeros(4)
    (tmp_path / "l.txt").write_text("x.h5\n")
    with pytest.raises(DataError, match="different numbers of samples"):
        hdf5(tmp_path / "l.txt", 2)
    (tmp_path / "junk.h5").write_bytes(b"not an hdf5 file at all" * 10)
    (tmp_path / "j.txt").write_text("junk.h5\n")
    with pytest.raises(DataError, match=r"junk\.h5: not a readable HDF5 file"):
        hdf5(tmp_path / "j.txt", 2)


# --- Data (LMDB) -----------------------------------------------------------------------

IMAGES = np.random.default_rng(1).integers(0, 256, (6, 3, 4, 5)).astype(np.uint8)
LABELS = np.arange(6) * 10


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "train_lmdb"
    write_lmdb(path, IMAGES, LABELS)
    return path


def lmdb_layer(source, batch=3, transform="", phase="TEST", shard=(0, 1), num_top=2, extra=""):
    text = (f'type: "Data" top: "data" top: "label" data_param {{ source: "{source}" batch_size: {batch} '
            f'backend: LMDB {extra} }} transform_param {{ {transform} }}')
    return data_layer(text, num_top=num_top, phase=phase, shard=shard)


def test_data_reads_datums_in_key_order_and_wraps(db):
    layer, top = lmdb_layer(db, batch=4)
    (d1, l1), (d2, l2) = batches(layer, top, 2)
    np.testing.assert_array_equal(d1, IMAGES[:4])
    np.testing.assert_array_equal(l1, LABELS[:4])
    np.testing.assert_array_equal(d2, IMAGES[[4, 5, 0, 1]])
    np.testing.assert_array_equal(l2, LABELS[[4, 5, 0, 1]])


def test_data_scale_and_mean_value(db):
    layer, top = lmdb_layer(db, transform="scale: 0.5 mean_value: 10 mean_value: 20 mean_value: 30")
    layer.forward([], top)
    mean = np.array([10, 20, 30.0])[:, None, None]
    np.testing.assert_allclose(top[0].data, (IMAGES[:3] - mean) * 0.5)


def test_data_mean_file(db, tmp_path):
    from firecaffe.proto import io
    mean = np.random.default_rng(2).uniform(0, 255, (1, 3, 4, 5))
    (tmp_path / "mean.binaryproto").write_bytes(io.array_to_blob(mean.astype(np.float32)).SerializeToString())
    layer, top = lmdb_layer(db, transform=f'mean_file: "{tmp_path / "mean.binaryproto"}" crop_size: 2')
    layer.forward([], top)
    want = (IMAGES[:3] - mean.astype(np.float32)[0])[:, :, 1:3, 1:3]
    np.testing.assert_allclose(top[0].data, want, rtol=1e-6)


def test_data_crop_is_centered_in_test(db):
    layer, top = lmdb_layer(db, transform="crop_size: 3")
    layer.forward([], top)
    assert top[0].shape == (3, 3, 3, 3)
    np.testing.assert_array_equal(top[0].data, IMAGES[:3, :, 0:3, 1:4])


def _windows(image, size):
    h, w = image.shape[1:]
    return [image[:, i:i + size, j:j + size] for i in range(h - size + 1) for j in range(w - size + 1)]


def test_data_crop_and_mirror_are_random_in_train(db):
    layer, top = lmdb_layer(db, batch=6, transform="crop_size: 3 mirror: true", phase="TRAIN")
    seen_flip = seen_plain = False
    offsets = set()
    for data, _ in batches(layer, top, 8):
        for image, out in zip(IMAGES, data):
            plain = [k for k, w in enumerate(_windows(image, 3)) if np.array_equal(w, out)]
            flipped = [k for k, w in enumerate(_windows(image, 3)) if np.array_equal(w[:, :, ::-1], out)]
            assert plain or flipped
            seen_plain |= bool(plain)
            seen_flip |= bool(flipped)
            offsets.update(plain + flipped)
    assert seen_flip and seen_plain and len(offsets) > 3


def test_data_mirror_without_crop_flips_some_images(db):
    # Caffe's DataTransformer draws the flip whenever mirror is set, in TEST too
    layer, top = lmdb_layer(db, batch=6, transform="mirror: true", phase="TEST")
    data = np.concatenate([b[0] for b in batches(layer, top, 4)])
    images = np.concatenate([IMAGES] * 4)
    flipped = np.all(data == images[..., ::-1], axis=(1, 2, 3))
    assert np.all(flipped | np.all(data == images, axis=(1, 2, 3)))
    assert 0 < flipped.sum() < len(data)


def test_data_two_ranks_read_what_one_rank_reads(db):
    one, top = lmdb_layer(db, batch=4)
    whole = [b[1] for b in batches(one, top, 4)]
    ranks = [lmdb_layer(db, batch=2, shard=(r, 2)) for r in range(2)]
    parts = [[b[1] for b in batches(layer, t, 4)] for layer, t in ranks]
    for step in range(4):
        np.testing.assert_array_equal(whole[step], np.concatenate([p[step] for p in parts]))
    state = ranks[1][0].get_state()
    again, t = lmdb_layer(db, batch=2, shard=(1, 2))
    again.set_state(state)
    ranks[1][0].forward([], ranks[1][1])
    again.forward([], t)
    np.testing.assert_array_equal(ranks[1][1][0].data, t[0].data)


def test_data_float_datums_and_single_top(tmp_path):
    images = np.random.default_rng(3).standard_normal((2, 1, 2, 2)).astype(np.float32)
    write_lmdb(tmp_path / "f", images, [1, 2])
    layer, top = lmdb_layer(tmp_path / "f", batch=2, num_top=1)
    layer.forward([], top)
    np.testing.assert_allclose(top[0].data, images)


def test_data_encoded_png_decodes_to_bgr(tmp_path):
    _required.require_module("PIL", "pip install pillow, a dependency of firecaffe")
    write_lmdb(tmp_path / "png", IMAGES[:2], LABELS[:2], encoding="png")
    layer, top = lmdb_layer(tmp_path / "png", batch=2)
    layer.forward([], top)
    np.testing.assert_array_equal(top[0].data, IMAGES[:2])


def test_data_corrupt_record_names_source_and_key(tmp_path):
    import lmdb
    path = tmp_path / "bad"
    write_lmdb(path, IMAGES[:3], LABELS[:3])
    env = lmdb.open(str(path))
    with env.begin(write=True) as txn:
        txn.put(b"00000001", b"\xff\xff\xff\xff garbage")
    env.close()
    layer, top = lmdb_layer(path, batch=2)
    with pytest.raises(DataError, match=r"bad: record '00000001'"):
        layer.forward([], top)


def test_data_leveldb_and_missing_source_are_data_errors(db, tmp_path):
    with pytest.raises(DataError, match="LEVELDB is not supported"):
        data_layer(f'type: "Data" top: "data" data_param {{ source: "{db}" batch_size: 2 backend: LEVELDB }}',
                   num_top=1)
    with pytest.raises(DataError, match="nope_lmdb"):
        lmdb_layer(tmp_path / "nope_lmdb")


# --- a bad label names the record it came from --------------------------------------

def _bad_label_net(tmp_path, data_layer_text, with_accuracy=False):
    """A net (data -> InnerProduct -> SoftmaxWithLoss [+ Accuracy]) over ``data_layer_text``."""
    from firecaffe.engine.net import Net
    path = tmp_path / "net.prototxt"
    path.write_text(_net_text(data_layer_text, with_accuracy))
    return Net(str(path), phase="TRAIN", dtype=np.float64)


def _net_text(data_layer_text, with_accuracy):
    accuracy = ('layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" }'
                if with_accuracy else "")
    return f"""name: "bad_label"
{data_layer_text}
layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param {{ num_output: 10 }} }}
{accuracy}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }}
"""


@pytest.mark.parametrize("with_accuracy", [False, True])    # with Accuracy the label goes through a Split
def test_bad_label_names_hdf5_file_and_row(tmp_path, with_accuracy):
    paths = []
    for f in range(2):
        labels = np.arange(6, dtype=np.float64) % 10
        if f == 1:
            labels[4] = 42                     # global sample 10: batch 2 (samples 8..11), sample 2
        path = tmp_path / f"part{f}.h5"
        with h5py.File(path, "w") as h:
            h["data"] = np.zeros((6, 1, 2, 2))
            h["label"] = labels
        paths.append(str(path))
    (tmp_path / "list.txt").write_text("\n".join(paths) + "\n")
    net = _bad_label_net(tmp_path, f'layer {{ name: "data" type: "HDF5Data" top: "data" top: "label" '
                         f'hdf5_data_param {{ source: "{tmp_path / "list.txt"}" batch_size: 4 }} }}',
                         with_accuracy)
    net.forward()
    net.forward()
    with pytest.raises(DataError) as info:
        net.forward()
    message = str(info.value)
    assert "label 42 of sample 2 in the batch is outside the 10 classes" in message
    assert f"that sample comes from {paths[1]}, row 4" in message


def test_bad_label_names_lmdb_record(tmp_path):
    labels = np.array([0, 1, 2, 3, 4, 77, 6, 7])
    write_lmdb(tmp_path / "db", np.zeros((8, 1, 2, 2), dtype=np.uint8), labels)
    net = _bad_label_net(tmp_path, f'layer {{ name: "data" type: "Data" top: "data" top: "label" '
                         f'data_param {{ source: "{tmp_path / "db"}" batch_size: 4 }} }}')
    net.forward()
    with pytest.raises(DataError, match=r"label 77 of sample 1 in the batch .* \(that sample comes from "
                                        r".*db, record '?00000005'? \(number 5\)\)"):
        net.forward()


def test_data_from_a_damaged_lmdb_page_names_the_file_and_record(tmp_path):
    """Pages in the middle of data.mdb overwritten: one DataError naming data.mdb and the record
    (lmdb's CorruptedError was a raw traceback)."""
    path = tmp_path / "big_lmdb"
    images = np.random.default_rng(0).integers(0, 256, (500, 1, 28, 28)).astype(np.uint8)
    write_lmdb(path, images, np.arange(500) % 10)
    data = path / "data.mdb"
    raw = bytearray(data.read_bytes())
    middle = len(raw) // 4096 // 2
    raw[middle * 4096:(middle + 3) * 4096] = b"\xa5" * (3 * 4096)
    data.write_bytes(bytes(raw))
    layer, top = lmdb_layer(path, batch=50)
    with pytest.raises(DataError, match=rf"{data}: cannot read record \d+ of 500 \(LMDB says: .*\); "
                                        "the database is damaged"):
        batches(layer, top, 10)
