"""Python layers: user classes written against pycaffe's caffe.Layer run unchanged
under ``import firecaffe as caffe``."""
import textwrap

import numpy as np
import pytest

import firecaffe
from firecaffe.engine.testing import check_gradient, make_layer
from firecaffe.errors import PrototxtError
from firecaffe.ops.python_layer import report

USER_MODULE = '''
import numpy as np
import firecaffe as caffe


class ScaledSquare(caffe.Layer):
    """y = a * factor * x**2 with a learnable a of shape (C,)."""

    def setup(self, bottom, top):
        self.factor = float(self.param_str or 1)
        self.blobs.add_blob(bottom[0].channels)
        self.blobs[0].data[...] = np.arange(1, bottom[0].channels + 1)

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        a = self.blobs[0].data.reshape(1, -1, 1, 1)
        top[0].data[...] = a * self.factor * bottom[0].data ** 2

    def backward(self, top, propagate_down, bottom):
        a = self.blobs[0].data.reshape(1, -1, 1, 1)
        x, dy = bottom[0].data, top[0].diff
        self.blobs[0].diff[...] += (dy * self.factor * x ** 2).sum(axis=(0, 2, 3))
        if propagate_down[0]:
            bottom[0].diff[...] = dy * a * self.factor * 2 * x


class EuclideanLoss(caffe.Layer):
    """pycaffe's example loss layer (examples/pycaffe/layers/pyloss.py), in its own words."""

    def setup(self, bottom, top):
        if len(bottom) != 2:
            raise Exception("Need two inputs to compute distance.")

    def reshape(self, bottom, top):
        if bottom[0].count != bottom[1].count:
            raise Exception("Inputs must have the same dimension.")
        self.diff = np.zeros_like(bottom[0].data, dtype=np.float32)
        top[0].reshape(1)

    def forward(self, bottom, top):
        self.diff[...] = bottom[0].data - bottom[1].data
        top[0].data[...] = np.sum(self.diff ** 2) / bottom[0].num / 2.

    def backward(self, top, propagate_down, bottom):
        for i in range(2):
            if not propagate_down[i]:
                continue
            sign = 1 if i == 0 else -1
            bottom[i].diff[...] = sign * self.diff / bottom[i].num


class Counter(caffe.Layer):
    """A data layer: batch size from param_str, a top that grows each forward."""

    def setup(self, bottom, top):
        self.calls = 0
        self.seen_phase = self.phase

    def reshape(self, bottom, top):
        top[0].reshape(self.calls + 1, 2)

    def forward(self, bottom, top):
        top[0].data[...] = self.calls
        self.calls += 1


class Broken(caffe.Layer):
    def reshape(self, bottom, top):
        top[0].reshape(1)

    def forward(self, bottom, top):
        helper(bottom)


def helper(bottom):
    return bottom[5].data


class FailsInSetup(caffe.Layer):
    def setup(self, bottom, top):
        raise RuntimeError("no good")
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "user_layers.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def python_layer(cls, param_str="", extra=""):
    return (f'type: "Python" python_param {{ module: "user_layers" layer: "{cls}" '
            f'param_str: "{param_str}" }} {extra}')


def test_user_layer_backward_matches_finite_differences(user_module):
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 2))
    layer, bottom, top = make_layer(python_layer("ScaledSquare", "0.5"), [x])
    assert top[0].shape == x.shape and [b.shape for b in layer.blobs] == [(3,)]
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, np.arange(1, 4).reshape(1, 3, 1, 1) * 0.5 * x ** 2)
    check_gradient(layer, bottom, top)


def test_firecaffe_layer_is_the_base_class_and_blob_offers_pycaffe_attributes(user_module):
    import user_layers
    assert issubclass(user_layers.ScaledSquare, firecaffe.Layer)
    layer, bottom, top = make_layer(python_layer("ScaledSquare"), [np.ones((2, 3, 4, 5))])
    b = bottom[0]
    assert (b.num, b.channels, b.height, b.width, b.count, b.shape) == (2, 3, 4, 5, 120, (2, 3, 4, 5))
    b.reshape(6, 5)
    assert b.shape == (6, 5) and b.data.shape == b.diff.shape == (6, 5)


NET = """
name: "pyloss"
layer { name: "x" type: "Input" top: "x" top: "y" input_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "loss" type: "Python" bottom: "ip" bottom: "y" top: "loss"
        python_param { module: "user_layers" layer: "EuclideanLoss" } loss_weight: 1 }
"""


def test_python_loss_layer_trains_the_net_below_it(user_module, tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text(NET)
    firecaffe.set_random_seed(3)
    net = firecaffe.Net(str(path), firecaffe.TRAIN, dtype=np.float64)
    gen = np.random.default_rng(1)
    x, y = gen.standard_normal((4, 3)), gen.standard_normal((4, 2))

    def loss_of(w):
        return np.sum((x @ w.T - y) ** 2) / 4 / 2

    out = net.forward(x=x, y=y)
    w = net.params["ip"][0].data.copy()
    assert out["loss"].shape == (1,)
    np.testing.assert_allclose(out["loss"][0], loss_of(w))
    net.clear_param_diffs()
    net.backward()
    numeric = np.zeros_like(w)
    for idx in np.ndindex(*w.shape):
        for sign in (1, -1):
            v = w.copy()
            v[idx] += sign * 1e-6
            numeric[idx] += sign * loss_of(v) / 2e-6
    np.testing.assert_allclose(net.params["ip"][0].diff, numeric, rtol=1e-6, atol=1e-9)
    assert net.loss_weights_by_blob() == {"loss": 1.0}


def test_reshape_runs_before_every_forward_and_phase_and_param_str_reach_the_layer(user_module):
    layer, bottom, top = make_layer(python_layer("Counter"), [], phase="TEST")
    assert layer.user.seen_phase == firecaffe.TEST == 1          # an int, as pycaffe gives it
    for calls in range(3):
        layer.forward_and_loss(bottom, top)      # what the Net calls: Caffe's Layer::Forward
        assert top[0].shape == (calls + 1, 2) and np.all(top[0].data == calls)


def test_exception_keeps_its_class_and_names_the_layer_call_and_file(user_module):
    layer, bottom, top = make_layer(python_layer("Broken"), [np.zeros(2)])
    with pytest.raises(IndexError) as info:
        layer.forward(bottom, top)
    assert type(info.value) is IndexError and str(info.value) == "list index out of range"
    note = "".join(getattr(info.value, "__notes__", [])) or str(info.value)
    assert "layer 'test' (Python, user_layers.Broken, " in note and "forward failed" in note
    assert "user_layers.py): forward failed" in note          # the module's file (imported once per session)
    # the command line prints this report: the user's frames only
    message = report(info.value)
    assert message.startswith("layer 'test' (Python, user_layers.Broken, ")
    assert "in helper" in message and "return bottom[5].data" in message
    assert "IndexError: list index out of range" in message
    assert "firecaffe/ops" not in message


def test_an_exception_in_setup_reaches_the_net_constructor_as_its_own_class(user_module, tmp_path):
    # pycaffe's test_python_layer: assertRaises(RuntimeError, caffe.Net, net_file, caffe.TEST)
    path = tmp_path / "fails.prototxt"
    path.write_text('layer { name: "bad" type: "Python" top: "out" '
                    'python_param { module: "user_layers" layer: "FailsInSetup" } }')
    with pytest.raises(RuntimeError) as info:
        firecaffe.Net(str(path), firecaffe.TEST)
    assert type(info.value) is RuntimeError and "no good" in str(info.value)
    assert "layer 'bad' (Python, user_layers.FailsInSetup" in report(info.value)


def test_the_command_line_prints_a_python_layers_exception_as_one_report(user_module, tmp_path,
                                                                         capsys, monkeypatch):
    from firecaffe.cli import main
    path = tmp_path / "fails.prototxt"
    path.write_text('layer { name: "bad" type: "Python" top: "out" '
                    'python_param { module: "user_layers" layer: "FailsInSetup" } }')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as code:
        main(["time", "--model", str(path), "--iterations", "1"])
    err = capsys.readouterr().err
    assert code.value.code == 1
    assert err.startswith("firecaffe: error: layer 'bad' (Python, user_layers.FailsInSetup, ")
    assert "setup failed" in err and "RuntimeError: no good" in err and "firecaffe/" not in err.split(":", 2)[2]


def test_missing_module_or_class_is_a_prototxt_error(user_module):
    with pytest.raises(PrototxtError, match="cannot import python_param.module 'no_such_module'"):
        make_layer('type: "Python" python_param { module: "no_such_module" layer: "X" }', [])
    with pytest.raises(PrototxtError, match="module 'user_layers' has no class 'Nope'"):
        make_layer(python_layer("Nope"), [])


def test_module_with_a_syntax_error_shows_where(tmp_path, monkeypatch):
    (tmp_path / "bad_syntax_layers.py").write_text(textwrap.dedent("""
        import firecaffe as caffe
        class L(caffe.Layer)
            pass
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SyntaxError) as info:
        make_layer('type: "Python" python_param { module: "bad_syntax_layers" layer: "L" }', [])
    assert "import of module 'bad_syntax_layers' failed" in report(info.value)
    assert str(tmp_path / "bad_syntax_layers.py") in report(info.value)


SCALED_NET = """
name: "scaled"
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 1 dim: 1 } } }
layer { name: "sq" type: "Python" bottom: "x" top: "y"
        python_param { module: "user_layers" layer: "ScaledSquare" param_str: "2" } }
"""


def test_blobs_a_python_layer_adds_are_net_params_saved_and_loaded(user_module, tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text(SCALED_NET)
    net = firecaffe.Net(str(path), firecaffe.TEST)
    assert list(net.params) == ["sq"] and net.params["sq"][0].shape == (3,)
    net.params["sq"][0].data[...] = [5, 6, 7]
    net.save(str(tmp_path / "w.caffemodel"))
    again = firecaffe.Net(str(path), str(tmp_path / "w.caffemodel"), firecaffe.TEST)
    np.testing.assert_array_equal(again.params["sq"][0].data, [5, 6, 7])
    out = again.forward(x=np.ones((2, 3, 1, 1)))
    np.testing.assert_array_equal(out["y"][0, :, 0, 0], [10, 12, 14])
