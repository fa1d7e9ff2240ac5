"""ImageData, WindowData and Python layers on a (stand-in) GPU: the same batches
as on the CPU through the staging path, and NumPy arrays for the user's code."""
import os

import numpy as np
import pytest

from firecaffe.core import backend
from firecaffe.core.blob import Blob
from firecaffe.engine.testing import layer_param
from firecaffe.ops import create_layer

GOLDEN = os.path.join(os.path.dirname(__file__), "..", "data", "golden_data", "images")
IMAGE_DATA = (f'name: "data" type: "ImageData" image_data_param {{ source: "{GOLDEN}/list.txt" '
              f'root_folder: "{GOLDEN}/" batch_size: 3 shuffle: true new_height: 9 new_width: 7 }} '
              'transform_param { crop_size: 5 mirror: true mean_value: 100 }')
WINDOW_DATA = (f'name: "data" type: "WindowData" window_data_param {{ source: "{GOLDEN}/windows.txt" '
               f'root_folder: "{GOLDEN}/" batch_size: 4 fg_fraction: 0.5 bg_threshold: 0.35 '
               'context_pad: 1 } transform_param { crop_size: 6 mirror: true }')


def batches(text, n):
    backend.seed(7)
    layer = create_layer(layer_param(text), phase="TRAIN", dtype=np.float32)
    top = [Blob((), np.float32, name=name) for name in ("data", "label")]
    layer.setup([], top)
    out = []
    for _ in range(n):
        layer.forward([], top)
        out.append([backend.to_host(t.data).copy() for t in top] + [layer.get_state()])
    return out, top


@pytest.mark.parametrize("text", [IMAGE_DATA, WINDOW_DATA], ids=["ImageData", "WindowData"])
def test_batches_on_the_gpu_are_those_of_the_cpu(fake_gpu, monkeypatch, text):
    monkeypatch.setitem(backend._state, "gpu", False)
    want, top = batches(text, 5)
    assert isinstance(top[0].data, np.ndarray)
    monkeypatch.setitem(backend._state, "gpu", True)
    got, top = batches(text, 5)
    assert isinstance(top[0].data, fake_gpu.ndarray)
    for k, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(g[0], w[0], err_msg=f"data of batch {k}")
        np.testing.assert_array_equal(g[1], w[1], err_msg=f"labels of batch {k}")
        assert g[2] == w[2]
    assert fake_gpu.counts["set_async"] >= 2 * 4          # staged one batch ahead


USER = '''
import numpy as np
import firecaffe as caffe


class Double(caffe.Layer):
    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        assert isinstance(bottom[0].data, np.ndarray) and isinstance(top[0].data, np.ndarray)
        top[0].data[...] = 2 * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = 2 * top[0].diff
'''


def test_python_layers_see_numpy_arrays_on_the_gpu(fake_gpu, tmp_path, monkeypatch):
    (tmp_path / "gpu_user_layers.py").write_text(USER)
    monkeypatch.syspath_prepend(str(tmp_path))
    layer = create_layer(layer_param('name: "d" type: "Python" python_param { module: "gpu_user_layers" '
                                     'layer: "Double" }'), dtype=np.float32)
    bottom, top = [Blob((2, 3), np.float32)], [Blob((), np.float32)]
    bottom[0].data.set(np.arange(6, dtype=np.float32).reshape(2, 3))
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    assert isinstance(top[0].data, fake_gpu.ndarray)
    np.testing.assert_array_equal(top[0].data.get(), 2 * np.arange(6).reshape(2, 3))
    top[0].diff.set(np.ones((2, 3), np.float32))
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff.get(), np.full((2, 3), 2))
