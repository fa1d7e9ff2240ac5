"""The model zoo in nets/: files parse, match their generator, have the published
parameter counts, and the deploy nets run forward to class probabilities."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

import firecaffe
from firecaffe.insight.analysis import analyze
from firecaffe.proto import caffe_pb2

ROOT = Path(__file__).resolve().parents[2]


def _load_zoo():
    spec = importlib.util.spec_from_file_location("firecaffe_nets_zoo", ROOT / "nets" / "_gen" / "zoo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


zoo = _load_zoo()
NAMES = list(zoo.ZOO)
# Published counts, plus our own two nets (no published number: pinned here).
EXPECTED_PARAMS = dict(zoo.PUBLISHED, nin=7_595_176, squeezenet_cifar=729_034)
CLASSES = {"squeezenet_cifar": 10}
# Their train_val nets (batch 32 at 224x224, ~1 GB of weights) are not built here;
# their deploy nets are, and run one image (a few tenths of a second each).
HEAVY = {"vgg11", "vgg16", "vgg19"}
FILES = [("train_val.prototxt", caffe_pb2.NetParameter), ("deploy.prototxt", caffe_pb2.NetParameter),
         ("solver.prototxt", caffe_pb2.SolverParameter)]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("filename,message", FILES, ids=[f for f, _ in FILES])
def test_zoo_prototxt_parses(name, filename, message):
    text_format.Parse((ROOT / "nets" / name / filename).read_text(), message())


@pytest.mark.parametrize("name", NAMES)
def test_committed_files_are_what_the_generator_writes(name, tmp_path):
    zoo.write(name, tmp_path)
    for filename in ("train_val.prototxt", "deploy.prototxt", "solver.prototxt", "README.md"):
        assert (tmp_path / name / filename).read_text() == (ROOT / "nets" / name / filename).read_text(), \
            f"nets/{name}/{filename} is stale: run `python nets/_gen/zoo.py {name}`"


@pytest.mark.parametrize("name", NAMES)
def test_readme_names_the_source_paper(name):
    text = (ROOT / "nets" / name / "README.md").read_text()
    assert any(year in text for year in ("2012", "2014", "2015", "2016")), text


@pytest.mark.parametrize("name", NAMES)
def test_solver_points_at_its_train_val(name):
    solver = text_format.Parse((ROOT / "nets" / name / "solver.prototxt").read_text(), caffe_pb2.SolverParameter())
    assert solver.net == f"nets/{name}/train_val.prototxt"
    assert solver.snapshot_prefix.startswith(f"snapshots/{name}/")


def test_firecaffe_recipe_is_large_batch_poly():
    solver = text_format.Parse((ROOT / "nets/googlenet/solver.prototxt").read_text(), caffe_pb2.SolverParameter())
    assert (solver.base_lr, solver.lr_policy, solver.power) == (pytest.approx(0.08), "poly", pytest.approx(0.5))
    assert (solver.momentum, solver.weight_decay) == (pytest.approx(0.9), pytest.approx(0.0002))
    assert solver.max_iter == -(-72 * 1281167 // 1024)        # 72 epochs at global batch 1024
    assert "--global-batch 1024" in (ROOT / "nets/googlenet/solver.prototxt").read_text()


def test_googlenet_train_val_keeps_auxiliary_losses_at_weight_0_3():
    net = text_format.Parse((ROOT / "nets/googlenet/train_val.prototxt").read_text(), caffe_pb2.NetParameter())
    losses = {l.name: list(l.loss_weight) for l in net.layer if l.type == "SoftmaxWithLoss"}
    assert losses == {"loss1/loss": [pytest.approx(0.3)], "loss2/loss": [pytest.approx(0.3)], "loss3/loss3": []}


def test_caffenet_pools_before_it_normalizes_and_alexnet_after():
    def order(name):
        net = text_format.Parse((ROOT / f"nets/{name}/deploy.prototxt").read_text(), caffe_pb2.NetParameter())
        return [l.name for l in net.layer if l.name in ("norm1", "pool1")]
    assert order("caffenet") == ["pool1", "norm1"]
    assert order("alexnet") == ["norm1", "pool1"]


def _randomize(net, rng):
    """Uniform random weights of variance 2 / fan_in (He); BatchNorm statistics of a unit
    normal and an identity Scale, so that activations stay finite through deep nets."""
    for name, blobs in net.params.items():
        kind = net.layer_dict[name].type
        for k, blob in enumerate(blobs):
            if kind == "BatchNorm":
                blob.data[...] = 0.0 if k == 0 else 1.0          # mean 0, variance 1, factor 1
            elif kind == "Scale":
                blob.data[...] = 1.0 if k == 0 else 0.0
            elif blob.data.ndim > 1:
                half_width = np.float32(np.sqrt(6 / blob.data[0].size))
                blob.data[...] = (rng.random(blob.data.shape, dtype=np.float32) * 2 - 1) * half_width


@pytest.fixture(scope="module", params=NAMES)
def deploy_net(request):
    name = request.param
    net = firecaffe.Net(str(ROOT / "nets" / name / "deploy.prototxt"), phase="TEST")
    yield name, net
    del net


def test_deploy_parameter_count_is_published(deploy_net):
    name, net = deploy_net
    counted = sum(blob.data.size for blobs in net.params.values() for blob in blobs)
    assert counted == EXPECTED_PARAMS[name]
    assert analyze(net)["params"] == EXPECTED_PARAMS[name]


def test_deploy_net_ends_in_class_probabilities(deploy_net):
    name, net = deploy_net
    classes = CLASSES.get(name, 1000)
    assert net.outputs == ["prob"]
    shape = tuple(net.blobs["prob"].shape)
    assert shape[:2] == (1, classes) and int(np.prod(shape)) == classes
    rng = np.random.default_rng(0)
    _randomize(net, rng)
    image = rng.standard_normal(net.blobs["data"].shape).astype(np.float32)
    prob = np.asarray(net.forward(data=image)["prob"]).reshape(1, classes)
    assert np.all(np.isfinite(prob)) and np.all(prob >= 0)
    np.testing.assert_allclose(prob.sum(), 1.0, rtol=1e-4)


def _with_input_layer(path, size):
    """The train_val net with its data layers swapped for one Input layer of a single
    image and label, so that the TRAIN phase builds without the data sets."""
    net = text_format.Parse(Path(path).read_text(), caffe_pb2.NetParameter())
    layers = [l for l in net.layer if l.type not in ("Data", "HDF5Data")]
    data = caffe_pb2.LayerParameter(name="data", type="Input", top=["data", "label"])
    data.input_param.shape.add(dim=[1, 3, size, size])
    data.input_param.shape.add(dim=[1])
    del net.layer[:]
    net.layer.extend([data] + layers)
    return net


TRAIN_CHECKED = [n for n in NAMES if n not in HEAVY | {"alexnet", "caffenet"}]


@pytest.mark.parametrize("name", TRAIN_CHECKED)
def test_train_val_builds_in_train_phase_and_gives_a_finite_loss(name):
    deploy = text_format.Parse((ROOT / "nets" / name / "deploy.prototxt").read_text(), caffe_pb2.NetParameter())
    size = deploy.layer[0].input_param.shape[0].dim[-1]
    net = firecaffe.Net(_with_input_layer(ROOT / "nets" / name / "train_val.prototxt", size), phase="TRAIN")
    loss = net.forward_range()
    assert np.isfinite(loss) and loss > 0
