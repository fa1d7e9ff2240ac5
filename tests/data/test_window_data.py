"""WindowData: R-CNN window files, Caffe's crops (against Caffe), sampling, resume."""
import os

import numpy as np
import pytest
from PIL import Image

from firecaffe.core import backend
from firecaffe.core.blob import Blob
from firecaffe.data.windows import WindowFile
from firecaffe.engine.testing import layer_param
from firecaffe.errors import DataError, PrototxtError
from firecaffe.ops import create_layer

GOLDEN = os.path.join(os.path.dirname(__file__), "golden_data")


def window_data(text, shard=(0, 1), seed=3):
    backend.seed(seed)
    layer = create_layer(layer_param(f'name: "win" type: "WindowData" {text}'), dtype=np.float32)
    layer.shard = shard
    top = [Blob(), Blob()]
    layer.setup([], top)
    return layer, top


def forward(layer, top):
    layer.forward([], top)
    return top[0].data.copy(), top[1].data.copy()


@pytest.mark.parametrize("case", ["warp", "context_square", "context_warp_scaled"])
def test_matches_caffe(case):
    """One foreground and one background window: Caffe's random choice has one outcome."""
    data = np.load(os.path.join(GOLDEN, "image_data.npz"))
    images = os.path.join(GOLDEN, "images")
    text = str(data[f"window_{case}_prototxt"]).replace("SOURCE", f"{images}/windows.txt")
    text = text.replace("ROOT", images).strip()[len("layer {"):-1]
    layer, top = window_data(text.replace('name: "data" type: "WindowData"', ""))
    got, label = forward(layer, top)
    np.testing.assert_allclose(got, data[f"window_{case}_data"], rtol=0, atol=1e-4)
    np.testing.assert_array_equal(label, data[f"window_{case}_label"])


@pytest.mark.parametrize("case", ["warp", "context_square", "context_warp_scaled"])
def test_matches_caffe_through_a_net_file(case, tmp_path):
    """The same cases read as a net: window_data_param.scale stays WindowData's own (the upgrade
    to transform_param is for V1 nets only, as in Caffe)."""
    import firecaffe
    data = np.load(os.path.join(GOLDEN, "image_data.npz"))
    images = os.path.join(GOLDEN, "images")
    text = str(data[f"window_{case}_prototxt"]).replace("SOURCE", f"{images}/windows.txt").replace("ROOT", images)
    (tmp_path / "net.prototxt").write_text(f'name: "windows"\n{text}\n')
    backend.seed(3)
    net = firecaffe.Net(str(tmp_path / "net.prototxt"), firecaffe.TRAIN)
    net.forward()
    np.testing.assert_allclose(net.blobs["data"].data, data[f"window_{case}_data"], rtol=0, atol=1e-4)
    np.testing.assert_array_equal(net.blobs["label"].data, data[f"window_{case}_label"])


@pytest.fixture
def windows(tmp_path):
    """Three 20x24 images, windows of labels 1-3 (foreground) and background ones."""
    lines = []
    for k in range(3):
        Image.fromarray(np.full((20, 24, 3), 40 * k + 10, np.uint8)).save(tmp_path / f"w{k}.png")
        lines += [f"# {k}", f"w{k}.png", "3", "20", "24", "3",
                  f"{k + 1} 0.9 2 2 15 15", f"{k + 1} 0.4 0 0 10 10", "0 0.1 5 5 20 19"]
    (tmp_path / "windows.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def params(folder, extra="", batch=8):
    return (f'window_data_param {{ source: "{folder}/windows.txt" root_folder: "{folder}/" '
            f'batch_size: {batch} {extra} }} transform_param {{ crop_size: 6 mirror: true }}')


def test_window_file_sorts_windows_by_overlap(windows):
    parsed = WindowFile(f"{windows}/windows.txt", f"{windows}/", fg_threshold=0.5, bg_threshold=0.3)
    assert [w[1] for w in parsed.fg] == [1, 2, 3] and len(parsed.bg) == 3
    assert all(w[1] == 0 for w in parsed.bg)
    assert parsed.images[1] == (f"{windows}/w1.png", 3, 20, 24)


def test_batches_hold_background_then_foreground_windows(windows):
    layer, top = window_data(params(windows, "fg_fraction: 0.25"))
    for _ in range(3):
        data, label = forward(layer, top)
        assert data.shape == (8, 3, 6, 6)
        assert np.all(label[:6] == 0) and np.all(label[6:] > 0)
        for image, value in zip(data, label):           # each window comes from the image of its label
            if value:
                assert np.all(image == 40 * (value - 1) + 10)


def test_ranks_draw_different_windows_and_resume_exactly(windows):
    a, ta = window_data(params(windows, "fg_fraction: 0.5"), shard=(0, 2))
    b, tb = window_data(params(windows, "fg_fraction: 0.5"), shard=(1, 2))
    draws_a = [forward(a, ta)[1] for _ in range(4)]
    draws_b = [forward(b, tb)[1] for _ in range(4)]
    assert any(not np.array_equal(x, y) for x, y in zip(draws_a, draws_b))
    state = a.get_state()
    want = [forward(a, ta) for _ in range(3)]
    again, tc = window_data(params(windows, "fg_fraction: 0.5"), shard=(0, 2), seed=11)
    again.set_state(state)
    for w in want:
        got = forward(again, tc)
        np.testing.assert_array_equal(got[0], w[0])
        np.testing.assert_array_equal(got[1], w[1])


def test_bad_window_files_and_parameters(windows, tmp_path):
    with pytest.raises(PrototxtError, match="crop_size > 0"):
        window_data(f'window_data_param {{ source: "{windows}/windows.txt" batch_size: 2 }}')
    with pytest.raises(DataError, match="needs at least one of each"):
        window_data(params(windows, "bg_threshold: 0.05"))
    (tmp_path / "bad.txt").write_text("# 1\nw0.png\n3 20 24 0\n")
    with pytest.raises(DataError, match=r"bad.txt:1: expected '# 0'"):
        window_data(params(windows).replace(f"{windows}/windows.txt", f"{tmp_path}/bad.txt"))
    (tmp_path / "short.txt").write_text("# 0\nw0.png\n3 20 24 2\n1 0.9 2 2 15 15\n")
    with pytest.raises(DataError, match="ends in the middle of a window"):
        window_data(params(windows).replace(f"{windows}/windows.txt", f"{tmp_path}/short.txt"))
