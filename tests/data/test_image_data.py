"""ImageData: list files, decoding, OpenCV's resize, transformation, shards, resume."""
import os

import numpy as np
import pytest
from PIL import Image

from firecaffe.core import backend
from firecaffe.core.blob import Blob
from firecaffe.data.images import load_image, read_list
from firecaffe.engine.testing import layer_param
from firecaffe.errors import DataError, PrototxtError
from firecaffe.ops import create_layer

GOLDEN = os.path.join(os.path.dirname(__file__), "golden_data")


def image_data(text, shard=(0, 1), phase="TRAIN", seed=7, num_top=2):
    backend.seed(seed)
    param = layer_param(f'name: "data" type: "ImageData" {text}')
    layer = create_layer(param, phase=phase, dtype=np.float32)
    layer.shard = shard
    top = [Blob((), np.float32, name=f"top{i}") for i in range(num_top)]
    layer.setup([], top)
    return layer, top


def forward(layer, top):
    layer.forward([], top)
    return [t.data.copy() for t in top]


@pytest.fixture
def folder(tmp_path):
    """Ten 6x5 PNG images whose pixels encode their number; labels 100 + number."""
    lines = []
    for k in range(10):
        pixels = np.full((6, 5, 3), 0, np.uint8)
        pixels[..., 0], pixels[..., 1], pixels[..., 2] = k, 2 * k, 3 * k         # R, G, B
        Image.fromarray(pixels).save(tmp_path / f"im{k}.png")
        lines.append(f"im{k}.png {100 + k}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def params(folder, extra="", batch=4):
    return (f'image_data_param {{ source: "{folder}/list.txt" root_folder: "{folder}/" '
            f'batch_size: {batch} {extra} }}')


# --- against Caffe ---------------------------------------------------------------
CASES = ["color_resize", "gray_resize", "shrink_half", "grow", "transform"]


@pytest.mark.parametrize("case", CASES)
def test_matches_caffe_on_png_images(case):
    data = np.load(os.path.join(GOLDEN, "image_data.npz"))
    images = os.path.join(GOLDEN, "images")
    text = str(data[f"{case}_prototxt"]).replace("SOURCE", f"{images}/list.txt").replace("ROOT", images)
    text = text.strip()[len("layer {"):-1]
    layer, top = image_data(text.replace('name: "data" type: "ImageData"', ""), phase="TEST")
    for b in range(2):
        got, label = forward(layer, top)
        np.testing.assert_array_equal(got, data[f"{case}_data{b}"], err_msg=f"{case} batch {b}")
        np.testing.assert_array_equal(label, data[f"{case}_label{b}"])


# --- the list file and decoding -------------------------------------------------
def test_list_file_splits_at_the_last_space_and_parses_labels_like_atoi(tmp_path):
    (tmp_path / "l.txt").write_text("a b.png 3\nc.png -2x\n\nd.png\tz 7\n")
    paths, labels, lines = read_list(str(tmp_path / "l.txt"))
    assert paths == ["a b.png", "c.png", "d.png\tz"] and list(labels) == [3, -2, 7] and lines == [1, 2, 4]


def test_images_are_bgr_in_channel_major_order(folder):
    image = load_image(str(folder / "im3.png"))
    assert image.shape == (3, 6, 5) and image.dtype == np.uint8
    assert (image[0].max(), image[1].max(), image[2].max()) == (9, 6, 3)     # B, G, R
    assert load_image(str(folder / "im3.png"), is_color=False).shape == (1, 6, 5)


def test_batches_follow_the_list_and_wrap_around(folder):
    layer, top = image_data(params(folder))
    seen = [forward(layer, top) for _ in range(3)]
    labels = np.concatenate([s[1] for s in seen])
    assert list(labels) == [100 + k % 10 for k in range(12)]
    assert seen[0][0].shape == (4, 3, 6, 5)
    np.testing.assert_array_equal(seen[0][0][:, 0, 0, 0], [0, 3, 6, 9])    # B = 3k comes first


def test_shuffle_permutes_every_epoch_and_covers_all(folder):
    layer, top = image_data(params(folder, "shuffle: true", batch=5))
    epochs = [np.concatenate([forward(layer, top)[1] for _ in range(2)]) for _ in range(2)]
    for labels in epochs:
        assert sorted(labels) == list(range(100, 110))
    assert list(epochs[0]) != list(epochs[1]) and list(epochs[0]) != list(range(100, 110))


def test_two_ranks_read_what_one_rank_of_twice_the_batch_reads(folder):
    one, top1 = image_data(params(folder, "shuffle: true", batch=4))
    ranks = [image_data(params(folder, "shuffle: true", batch=2), shard=(r, 2)) for r in range(2)]
    for _ in range(4):
        whole = forward(one, top1)[1]
        parts = np.concatenate([forward(layer, top)[1] for layer, top in ranks])
        np.testing.assert_array_equal(parts, whole)


def test_state_resumes_exactly(folder):
    layer, top = image_data(params(folder, "shuffle: true", batch=3))
    forward(layer, top)
    state = layer.get_state()
    expected = [forward(layer, top) for _ in range(4)]
    again, top2 = image_data(params(folder, "shuffle: true", batch=3), seed=99)
    again.set_state(state)
    for want in expected:
        for got, ref in zip(forward(again, top2), want):
            np.testing.assert_array_equal(got, ref)


def test_prefetching_threads_do_not_change_the_batches(folder, monkeypatch):
    text = params(folder, "shuffle: true new_height: 4 new_width: 3",
                  batch=3) + " transform_param { mirror: true crop_size: 3 }"
    monkeypatch.setenv("FIRECAFFE_DECODE_THREADS", "0")
    plain, top = image_data(text)
    want = [forward(plain, top) for _ in range(5)]
    monkeypatch.setenv("FIRECAFFE_DECODE_THREADS", "3")
    threaded, top = image_data(text)
    assert threaded.decoder.pool is not None
    for ref in want:
        for got, r in zip(forward(threaded, top), ref):
            np.testing.assert_array_equal(got, r)


# --- errors -----------------------------------------------------------------------
def test_root_folder_is_joined_by_plain_concatenation(folder):
    with pytest.raises(DataError, match=r"list.txt:1: could not load .*im0.png: no such file \(root_folder .* end it with '/'\)") as info:
        image_data(params(folder).replace(f'root_folder: "{folder}/"', f'root_folder: "{folder}"'))
    assert f"{folder}im0.png" in str(info.value)


def test_a_missing_image_later_names_the_list_line(folder):
    os.remove(folder / "im6.png")
    layer, top = image_data(params(folder))
    forward(layer, top)
    with pytest.raises(DataError, match=r"layer 'data' \(ImageData\): .*list.txt:7: could not load"):
        forward(layer, top)


def test_images_of_several_sizes_need_a_resize_or_crop(folder):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "im2.png")
    layer, top = image_data(params(folder))
    with pytest.raises(DataError, match=r"list.txt:3: .*im2.png is a 8x8 image.*set new_height/new_width"):
        forward(layer, top)
    layer, top = image_data(params(folder, "new_height: 6 new_width: 5"))
    forward(layer, top)


def test_bad_parameters(folder, tmp_path):
    with pytest.raises(PrototxtError, match="new_height and new_width together"):
        image_data(params(folder, "new_height: 4"))
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(DataError, match="is empty"):
        image_data(f'image_data_param {{ source: "{tmp_path}/empty.txt" batch_size: 1 }}')


# --- encoded Datum records (convert_imageset --encoded) read by Data ---------------
@pytest.mark.parametrize("case", ["native", "force_gray", "mean_scale"])
def test_encoded_png_records_match_caffe(case, tmp_path):
    import glob
    import lmdb
    from firecaffe.data.db import make_datum
    data = np.load(os.path.join(GOLDEN, "image_data.npz"))
    source = str(tmp_path / "encoded_lmdb")
    env = lmdb.open(source, map_size=1 << 24)
    with env.begin(write=True) as txn:
        for k, name in enumerate(sorted(glob.glob(os.path.join(GOLDEN, "images", "img*.png")))):
            image = np.asarray(Image.open(name).convert("RGB"))[:, :, ::-1].transpose(2, 0, 1)
            txn.put(b"%08d" % k, make_datum(image, 10 + k, "png").SerializeToString())
    env.close()
    text = str(data[f"encoded_{case}_prototxt"]).replace("SOURCE", source).strip()[len("layer {"):-1]
    layer = create_layer(layer_param(text), phase="TEST", dtype=np.float32)
    top = [Blob(), Blob()]
    layer.setup([], top)
    for b in range(2):
        got, label = forward(layer, top)
        np.testing.assert_array_equal(got, data[f"encoded_{case}_data{b}"], err_msg=f"{case} batch {b}")
        np.testing.assert_array_equal(label, data[f"encoded_{case}_label{b}"])
