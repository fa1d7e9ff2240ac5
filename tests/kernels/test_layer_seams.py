"""Where the GPU code lives: in each layer's own file, next to its CPU code; no
class is patched when GPU mode starts; kernels know no layer and every launch
goes through one swappable launcher."""
import ast
import os
import sys
import types

import pytest

import firecaffe
import firecaffe.kernels as kernels
from firecaffe.core import backend
from firecaffe.ops import LAYERS, Layer

PACKAGE = os.path.dirname(os.path.abspath(firecaffe.__file__))
WITH_KERNELS = {"Convolution": ("forward_gpu", "backward_gpu"), "Deconvolution": ("forward_gpu", "backward_gpu"),
                "Pooling": ("forward_gpu", "backward_gpu"), "LRN": ("forward_gpu", "backward_gpu"),
                "SoftmaxWithLoss": ("forward_gpu", "backward_gpu"), "Dropout": ("forward_gpu",)}


def _imported_modules(relative_path):
    """Absolute names of the firecaffe modules a source file imports."""
    path = os.path.join(PACKAGE, relative_path)
    package = ["firecaffe"] + os.path.dirname(relative_path).split(os.sep)
    names = []
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names += [module] + [f"{module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    return [n for n in names if n.startswith("firecaffe")]


@pytest.mark.parametrize("source", ["core/backend.py", "kernels/__init__.py"])
def test_backend_and_kernels_import_no_layer_code(source):
    layer_code = [m for m in _imported_modules(source) if m.startswith(("firecaffe.ops", "firecaffe.engine"))]
    assert layer_code == []


@pytest.mark.parametrize("type_name", sorted(WITH_KERNELS))
def test_layers_with_kernels_define_their_gpu_methods_in_their_own_file(type_name):
    cls = LAYERS[type_name]
    for name in WITH_KERNELS[type_name]:
        method = getattr(cls, name)
        assert method is not getattr(Layer, name), f"{type_name}.{name} is the base class default"
        assert method.__module__ == cls.__module__, f"{type_name}.{name} lives in {method.__module__}"


def test_gpu_mode_patches_no_layer_class(monkeypatch):
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
        Device=lambda device: types.SimpleNamespace(use=lambda: None)))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    for key in ("gpu", "device", "cupy"):
        monkeypatch.setitem(backend._state, key, backend._state[key])
    before = {name: dict(vars(cls)) for name, cls in LAYERS.items()}
    backend.set_mode_gpu(0)
    assert backend.gpu_enabled()
    assert {name: dict(vars(cls)) for name, cls in LAYERS.items()} == before


def test_every_launch_goes_through_the_launcher(monkeypatch):
    calls = []
    monkeypatch.setattr(kernels, "launcher", lambda *args: calls.append(args))
    kernels.launch("lrn", "lrn_forward", "float32", 10, ("x",))
    kernels.launch("lrn", "lrn_forward", "float32", 0, ("x",))           # nothing to do
    assert calls == [("lrn", "lrn_forward", "float32", 10, ("x",))]
    with pytest.raises(ValueError, match="exceed the int index range"):
        kernels.launch("lrn", "lrn_forward", "float32", kernels.MAX_INDEX + 1, ())
    assert len(calls) == 1
