"""Old-format nets upgrade, build and infer shapes like Caffe's."""
import os

import firecaffe
from firecaffe.insight.analysis import analyze

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def test_v1_cifar10_quick_builds_with_caffes_shapes_and_counts():
    net = firecaffe.Net(os.path.join(FIXTURES, "cifar10_quick_v1_deploy.prototxt"), phase="TEST")
    assert net.blobs["pool1"].data.shape == (1, 32, 16, 16)      # pooling rounds up: 32 -> 16
    assert net.blobs["pool3"].data.shape == (1, 64, 4, 4)
    assert net.blobs["prob"].data.shape == (1, 10)
    assert analyze(net)["params"] == 145578
    assert net.params_lr[:2] == [1.0, 2.0]                       # blobs_lr became lr_mult


def test_input_dim_deploy_builds():
    net = firecaffe.Net(os.path.join(FIXTURES, "deploy_input_dim.prototxt"), phase="TEST")
    assert net.inputs and all(net.blobs[name].data.ndim == 4 for name in net.inputs)
