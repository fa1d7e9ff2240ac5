"""InnerProduct's sparse forward (ops/sparse_ip.py): equal to dense, chosen where it should be,
and never stale: every way the weights can change is followed by a forward that must see it."""
import subprocess
import sys

import numpy as np
import pytest

from firecaffe import fcz
from firecaffe.engine.net import Net
from firecaffe.ops import sparse_ip

pytest.importorskip("scipy.sparse")


@pytest.fixture(autouse=True)
def sparse_whenever_allowed(monkeypatch, request):
    """The layers here are tiny (dense is faster): the timing policy is set aside, except in its own
    test, so that these tests see the sparse path whenever the layer may run it (and its size floor,
    except in the test of that)."""
    if "tiny" not in request.node.name:
        monkeypatch.setattr(sparse_ip, "MIN_MACS", 0)
    if "policy" not in request.node.name:
        monkeypatch.setattr(sparse_ip.Costs, "build_pays", lambda self, rows: True)
        monkeypatch.setattr(sparse_ip.Costs, "scan_pays", lambda self: True)
        monkeypatch.setattr(sparse_ip.Costs, "prefer_sparse", lambda self, rows: True)


def net_text(shape=(4, 6, 5), axis=1, transpose=False, bias=True, out=7, lr=None, engine=None):
    param = f"param {{ lr_mult: {lr} }}" if lr is not None else ""
    extra = f"engine: {engine}" if engine else ""
    return f"""
name: "ip"
layer {{ name: "data" type: "Input" top: "data"
         input_param {{ shape {{ {" ".join(f"dim: {d}" for d in shape)} }} }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "out" {param}
         inner_product_param {{ num_output: {out} axis: {axis} transpose: {str(transpose).lower()}
                                bias_term: {str(bias).lower()} {extra} }} }}
"""


def make_net(tmp_path, phase="TEST", name="net.prototxt", **kw):
    path = tmp_path / name
    path.write_text(net_text(**kw))
    return Net(str(path), phase)


def sparse_weights(gen, shape, density):
    w = gen.standard_normal(shape).astype(np.float32)
    return np.where(gen.random(shape) < density, w, 0).astype(np.float32)


def expected(net, x):
    """x W^T + b in float64 from the net's current weights, read without exposing them."""
    layer = net.layer_dict["ip"]
    w = layer.blobs[0].weights.astype(np.float64)
    m = int(np.prod(x.shape[:layer.axis]))
    y = x.reshape(m, -1).astype(np.float64) @ (w if layer.transpose else w.T)
    if layer.bias_term:
        y += layer.blobs[1].weights
    return y.reshape(x.shape[:layer.axis] + (layer.num_output,))


def run(net, x):
    net.blobs["data"].data[...] = x
    return net.forward()["out"].copy()


def check(net, x):
    np.testing.assert_allclose(run(net, x), expected(net, x), rtol=1e-4, atol=1e-4)


def load(net, w, b=None):
    layer = net.layer_dict["ip"]
    layer.blobs[0].write(w)
    if b is not None:
        layer.blobs[1].write(b)


@pytest.mark.parametrize("shape,axis,transpose,bias", [
    ((4, 6, 5), 1, False, True), ((4, 6, 5), 1, True, True), ((4, 6, 5), 2, False, False),
    ((3, 4, 6, 5), -2, True, False), ((1, 300), 1, False, True), ((64, 300), 1, True, True)])
def test_sparse_forward_equals_dense(tmp_path, shape, axis, transpose, bias):
    gen = np.random.default_rng(1)
    net = make_net(tmp_path, shape=shape, axis=axis, transpose=transpose, bias=bias, out=9)
    layer = net.layer_dict["ip"]
    load(net, sparse_weights(gen, layer.blobs[0].shape, 0.08),
         gen.standard_normal(9).astype(np.float32) if bias else None)
    x = gen.standard_normal(shape).astype(np.float32)
    first = run(net, x)
    assert not layer.sparse.used                   # the first forward after a change: dense
    for _ in range(2):
        np.testing.assert_allclose(run(net, x), first, rtol=1e-5, atol=1e-5)
        assert layer.sparse.used
    np.testing.assert_allclose(first, expected(net, x), rtol=1e-4, atol=1e-4)
    assert layer.engine_name.startswith("sparse")


def test_engine_choice(tmp_path, monkeypatch):
    gen = np.random.default_rng(2)

    def used(density=0.05, **kw):
        net = make_net(tmp_path, **kw)
        load(net, sparse_weights(gen, net.layer_dict["ip"].blobs[0].shape, density))
        x = gen.standard_normal((4, 6, 5)).astype(np.float32)
        for _ in range(3):
            check(net, x)
        return net.layer_dict["ip"].engine_name

    assert used().startswith("sparse")
    assert not used(phase="TRAIN").startswith("sparse")            # the weight gradient is wanted
    assert used(phase="TRAIN", lr=0).startswith("sparse")          # lr_mult 0: no weight gradient
    assert used(engine="CAFFE") == "NumPy"
    assert not used(density=0.3).startswith("sparse")
    monkeypatch.setenv("FIRECAFFE_SPARSE_DENSITY", "0.5")
    assert used(density=0.3).startswith("sparse")
    monkeypatch.setenv("FIRECAFFE_SPARSE_DENSITY", "0")
    assert not used().startswith("sparse")


def checked_thrice(tmp_path, seed):
    """A TEST net with 5%-dense weights, its forward checked against dense three times."""
    gen = np.random.default_rng(seed)
    net = make_net(tmp_path)
    load(net, sparse_weights(gen, (7, 30), 0.05))
    x = gen.standard_normal((4, 6, 5)).astype(np.float32)
    for _ in range(3):
        check(net, x)
    return net


def test_a_tiny_forward_runs_dense_untouched(tmp_path):
    net = checked_thrice(tmp_path, 11)
    sw = net.layer_dict["ip"].sparse
    assert 4 * 7 * 30 < sparse_ip.MIN_MACS and not sw.used and sw.array is None
    assert net.layer_dict["ip"].engine_name == "NumPy"


def test_a_bad_threshold_is_one_clear_error(tmp_path, monkeypatch):
    from firecaffe.errors import FirecaffeError
    monkeypatch.setenv("FIRECAFFE_SPARSE_DENSITY", "1.5")
    with pytest.raises(FirecaffeError, match="FIRECAFFE_SPARSE_DENSITY=1.5: give a density between 0 and 1"):
        make_net(tmp_path)


def warmed(tmp_path, gen, **kw):
    """A TEST net whose layer runs sparse, its input, and whether its storage is exposed."""
    net = make_net(tmp_path, **kw)
    load(net, sparse_weights(gen, net.layer_dict["ip"].blobs[0].shape, 0.08))
    x = gen.standard_normal((4, 6, 5)).astype(np.float32)
    run(net, x)
    check(net, x)
    assert net.layer_dict["ip"].sparse.used
    return net, x


@pytest.mark.parametrize("transpose", [False, True])
def test_writing_through_a_held_view_is_seen(tmp_path, transpose):
    gen = np.random.default_rng(3)
    net, x = warmed(tmp_path, gen, transpose=transpose)
    view = net.params["ip"][0].data             # a pycaffe script keeps a view
    sw = net.layer_dict["ip"].sparse
    copy = sw.matrix
    check(net, x)
    assert sw.used and sw.matrix is copy        # exposed, unchanged: verified, kept (not rebuilt)
    view[0, 0] = 7.0 if view[0, 0] == 0 else 0.0  # a new nonzero, or one fewer, later
    check(net, x)
    nz = np.flatnonzero(view)[0]
    view.flat[nz] += 1.0                        # the same pattern, another value
    check(net, x)
    net.params["ip"][0].data[...] = 0           # surgery, as pycaffe scripts write it
    check(net, x)


def test_assigning_data_is_seen(tmp_path):
    gen = np.random.default_rng(4)
    net, x = warmed(tmp_path, gen)
    blob = net.params["ip"][0]
    blob.data = sparse_weights(gen, blob.shape, 0.05)
    check(net, x)
    check(net, x)


def test_loading_weights_is_seen(tmp_path):
    gen = np.random.default_rng(5)
    net, x = warmed(tmp_path, gen)
    other, _ = warmed(tmp_path, gen, name="other.prototxt")
    other.save(str(tmp_path / "w.caffemodel"))
    net.copy_from(str(tmp_path / "w.caffemodel"))
    check(net, x)
    np.testing.assert_array_equal(net.layer_dict["ip"].blobs[0].weights, other.layer_dict["ip"].blobs[0].weights)
    third, _ = warmed(tmp_path, gen, name="third.prototxt")
    third.save_hdf5(str(tmp_path / "w.h5"))
    net.copy_from(str(tmp_path / "w.h5"))
    check(net, x)
    check(net, x)
    w = sparse_weights(gen, (7, 30), 0.04)
    b = gen.standard_normal(7).astype(np.float32)
    fcz.write(str(tmp_path / "w.fcz"), "ip", [("ip", "InnerProduct", [(w, {}), (b, {})])])
    net.copy_from(str(tmp_path / "w.fcz"))
    check(net, x)
    np.testing.assert_array_equal(net.layer_dict["ip"].blobs[0].weights, w)
    assert not net.layer_dict["ip"].blobs[0].storage.exposed      # loading is the engine's write


def test_share_with_is_seen(tmp_path):
    gen = np.random.default_rng(6)
    net, x = warmed(tmp_path, gen)
    train = make_net(tmp_path, phase="TRAIN", name="train.prototxt")
    load(train, sparse_weights(gen, (7, 30), 0.06))
    net.share_with(train)
    check(net, x)
    check(net, x)
    train.param_arena[...] *= 2                 # the engine's write to the shared arena (as the solver's)
    check(net, x)
    check(net, x)
    train.params["ip"][0].data[0, :] = 1.0      # the train net's blob exposed: the test net sees it
    check(net, x)


def test_engine_writes_without_exposure_keep_the_fast_path(tmp_path, monkeypatch):
    gen = np.random.default_rng(7)
    net, x = warmed(tmp_path, gen)
    layer = net.layer_dict["ip"]
    calls = []
    real = layer.sparse._verified
    monkeypatch.setattr(layer.sparse, "_verified", lambda w: calls.append(1) or real(w))
    check(net, x)
    check(net, x)
    assert calls == []                          # nothing changed, nothing exposed: no scan
    net.param_arena[:3] += 1.0                  # an arena write: one verification, then a rebuild
    check(net, x)
    assert len(calls) == 1
    check(net, x)
    check(net, x)
    assert len(calls) == 1


def test_solver_test_passes_see_each_update(tmp_path, monkeypatch):
    """A Solver's test net shares the train net's weights: every test pass after steps must match a
    dense forward of the updated weights, and the loop leaves the weights unexposed (no scan per
    forward)."""
    import os
    from firecaffe.proto import io
    from firecaffe.solvers import Solver
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    param = io.read_solver(os.path.join(repo, "nets", "lenet_digits", "solver.prototxt"))
    param.snapshot_prefix, param.display, param.test_interval = str(tmp_path / "s"), 0, 0
    param.snapshot_after_train = False
    monkeypatch.chdir(repo)
    solver = Solver(param)
    test = solver.test_nets[0]
    names = [layer.name for layer in test.layers if layer.type == "InnerProduct"]
    from firecaffe.compress.retrain import Masks
    masks = {}
    for name in names:                          # pruned to 5%, kept so through the updates
        w = solver.net.layer_dict[name].blobs[0].weights
        masks[name] = np.abs(w) > np.quantile(np.abs(w), 0.95)
    Masks(solver, masks).attach()
    for _ in range(3):
        solver.step(1)
        for _ in range(3):
            for name in names:              # up to the layer: its top before an in-place ReLU
                test.forward(end=name)
                layer = test.layer_dict[name]
                i = test.layers.index(layer)
                bottom, top = test.bottom_vecs[i][0].data, test.top_vecs[i][0].data
                w = layer.blobs[0].weights.astype(np.float64)
                want = bottom.reshape(bottom.shape[0], -1) @ w.T + layer.blobs[1].weights
                np.testing.assert_allclose(top.reshape(want.shape), want, rtol=1e-4, atol=1e-4)
    assert any(test.layer_dict[n].sparse.used for n in names)
    assert not any(test.layer_dict[n].blobs[0].storage.exposed for n in names)
    param.test_iter[0] = 4                      # Solver.test itself: one verification per layer per pass
    solver.step(1)
    calls = []
    for name in names:
        sw = test.layer_dict[name].sparse
        monkeypatch.setattr(sw, "_verified", lambda w, real=sw._verified: calls.append(1) or real(w))
    solver.test()
    assert len(calls) == len(names)


def test_without_scipy_every_layer_runs_dense(tmp_path, monkeypatch):
    monkeypatch.setattr(sparse_ip, "_scipy", [])
    monkeypatch.setitem(sys.modules, "scipy.sparse", None)     # import scipy.sparse raises ImportError
    net = checked_thrice(tmp_path, 8)
    assert net.layer_dict["ip"].engine_name == "NumPy"


def test_firecaffe_imports_and_runs_where_scipy_cannot_be_imported(tmp_path):
    """In a fresh process whose SciPy cannot be imported, `import firecaffe` works and a layer whose
    (all-zero) weights would run sparse runs dense; the same process with SciPy runs it sparse."""
    (tmp_path / "net.prototxt").write_text(net_text(shape=(64, 300), out=100))
    run_net = ("import numpy as np, firecaffe\n"
               f"net = firecaffe.Net({str(tmp_path / 'net.prototxt')!r}, firecaffe.TEST)\n"
               "for _ in range(3): out = net.forward()['out']\n"
               "print(net.layer_dict['ip'].engine_name, float(np.abs(out).max()))\n")
    block = "import sys; sys.modules['scipy'] = None; sys.modules['scipy.sparse'] = None\n"
    outs = []
    for code in (block + run_net, run_net):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        outs.append(done.stdout)
    assert "sparse" not in outs[0] and outs[0].split()[-1] == "0.0"
    assert outs[1].startswith("sparse") and outs[1].split()[-1] == "0.0"


def test_timing_policy_builds_when_dense_forwards_lost_a_build(tmp_path, monkeypatch):
    """Ski rental: after a change the layer runs dense and rebuilds its copy once the dense forwards
    lost (dense - sparse time) as much as a build costs; a weight not known sparse is scanned once
    the dense forwards took SCAN_RATIO scans' time; where dense is faster, dense."""
    gen = np.random.default_rng(9)
    net = make_net(tmp_path, shape=(4, 30))
    layer, x = net.layer_dict["ip"], gen.standard_normal((4, 30)).astype(np.float32)
    load(net, sparse_weights(gen, (7, 30), 0.05))
    sw = layer.sparse
    pinned = {}

    def took(self, rows, seconds, sparse):          # the measured times, pinned
        real_took(self, rows, pinned["sparse" if sparse else "dense"], sparse)
    real_took = sparse_ip.Costs.took
    monkeypatch.setattr(sparse_ip.Costs, "took", took)
    pinned.update(dense=0.5, sparse=0.2)
    check(net, x)                                  # the first look: scanned, dense
    check(net, x)                                  # the first build: at once
    assert sw.used and sw.costs.build_s is not None
    check(net, x)
    assert sw.used                                 # timed sparse (the build's forward is not timed)
    check(net, x)
    assert not sw.used                             # timed dense once, to compare
    assert layer.engine_name.startswith("sparse")  # (not named dense for it)
    check(net, x)
    assert sw.used
    sw.costs.build_s = 1.0                         # a build costs 3.3 forwards' gain
    net.param_arena[...] *= 2                      # a change (the sample check sees it)
    built = []
    for _ in range(7):
        check(net, x)
        built.append(sw.used)
    # dense: the verification (not timed), then lost .3, .6, .9, 1.2 >= 1: built on the next
    assert built == [False, False, False, False, False, True, True]
    pinned.update(dense=0.1, sparse=0.15)          # dense faster at this batch (by less than 2x)
    sw.costs.dense_s[4], sw.costs.sparse_s[4] = 0.1, 0.15
    runs = []
    for _ in range(sparse_ip.PROBE_EVERY):
        check(net, x)
        runs.append((sw.used, layer.engine_name.startswith("sparse")))
    assert runs.count((True, True)) == 1           # dense, probing sparse once in PROBE_EVERY
    assert runs.count((False, False)) == sparse_ip.PROBE_EVERY - 1     # and named after what ran

    dense = make_net(tmp_path, shape=(4, 30), name="dense.prototxt")
    load(dense, gen.standard_normal((7, 30)).astype(np.float32))
    dsw = dense.layer_dict["ip"].sparse
    check(dense, x)                                # the first look: scanned (scan_s measured)
    assert dsw.density == 1.0
    dsw.costs.scan_s = 1.0
    dense.param_arena[...] *= 2
    pinned.update(dense=0.25, sparse=0.2)
    scanned = []
    for _ in range(sparse_ip.SCAN_RATIO * 4 + 3):
        check(dense, x)
        scanned.append(dsw.density is not None)
    assert scanned.index(True) == sparse_ip.SCAN_RATIO * 4       # once dense took 10 scans (40 x 0.25)
    assert not dsw.used


def test_time_reports_the_sparse_engine_and_engine_caffe_turns_it_off(tmp_path):
    """`firecaffe time --phase TEST` names the engine of a pruned InnerProduct: sparse, and with
    inner_product_param.engine CAFFE the dense NumPy path."""
    import os
    from firecaffe.proto import io
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    model = os.path.join(repo, "nets", "lenet_digits", "train_test.prototxt")
    net = Net(model, "TEST")
    gen = np.random.default_rng(10)
    layers = []
    for layer in net.layers:
        if layer.blobs:
            arrays = [layer.blobs[0].weights.copy(), layer.blobs[1].weights.copy()]
            if layer.name == "ip1":
                arrays[0] = sparse_weights(gen, arrays[0].shape, 0.05)
            layers.append((layer.name, layer.type, [(a, {}) for a in arrays]))
    fcz.write(str(tmp_path / "pruned.fcz"), net.name, layers)
    param = io.read_net(model)
    for lp in param.layer:
        if lp.name == "ip1":
            lp.inner_product_param.engine = lp.inner_product_param.CAFFE
    io.write_text(param, str(tmp_path / "caffe_engine.prototxt"))
    env = dict(os.environ, FIRECAFFE_NO_PROGRESS="1")
    for prototxt, want in ((model, "ip1\tengine: sparse (SciPy CSR, "),
                           (str(tmp_path / "caffe_engine.prototxt"), "ip1\tengine: NumPy")):
        result = subprocess.run([sys.executable, "-m", "firecaffe", "time", "--model", prototxt, "--phase", "TEST",
                                 "--weights", str(tmp_path / "pruned.fcz"), "--iterations", "2"],
                                cwd=repo, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert want in result.stderr, result.stderr
