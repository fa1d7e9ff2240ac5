"""A layer whose top shape follows the data (Filter) reshapes the layers after it, as
Caffe does by reshaping every layer before its forward."""
import numpy as np

import firecaffe

NET = """
input: "x" input_shape { dim: 4 dim: 3 }
input: "keep" input_shape { dim: 4 }
layer { name: "filter" type: "Filter" bottom: "x" bottom: "keep" top: "kept" }
layer { name: "sum" type: "Reduction" bottom: "kept" top: "total" reduction_param { axis: 1 } }
"""


def test_layers_after_filter_follow_its_top_shape(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text(NET)
    net = firecaffe.Net(str(path), firecaffe.TEST)
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    for keep in ([1, 0, 1, 0], [1, 1, 1, 0], [0, 0, 0, 1]):
        out = net.forward(x=x, keep=np.array(keep, np.float32))["total"]
        np.testing.assert_allclose(out, x[np.array(keep, bool)].sum(axis=1))
