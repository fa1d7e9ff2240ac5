"""tests/_required.py: a tool CI installs skips where it is missing, and fails on CI;
tests/gpu/conftest.py: a missing CuPy skips, a broken one fails."""
import sys

import pytest

from tests import _required


@pytest.mark.parametrize("ci", ["", "false"])
def test_a_missing_tool_skips_off_ci(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="no frobnicator"):
        _required.missing("no frobnicator")


@pytest.mark.parametrize("ci", ["true", "TRUE", "1"])
def test_a_missing_tool_fails_on_ci(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="CI=true .* no frobnicator"):
        _required.missing("no frobnicator")


def test_a_module_that_is_not_installed_is_missing_and_one_that_is_broken_raises(monkeypatch, tmp_path):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no_such_module_fc is not installed .pip install it."):
        _required.require_module("no_such_module_fc", "pip install it")
    (tmp_path / "broken_fc").mkdir()
    (tmp_path / "broken_fc" / "__init__.py").write_text("import no_such_dependency_fc\n")
    (tmp_path / "failing_fc.py").write_text("raise OSError('libsomething.so: cannot open shared object file')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_fc"):
        _required.require_module("broken_fc", "pip install it")
    with pytest.raises(OSError, match="libsomething"):
        _required.require_module("failing_fc", "pip install it")
    assert _required.require_module("json", "stdlib") is sys.modules["json"]


def _fake_cupy(tmp_path, monkeypatch, body):
    (tmp_path / "cupy").mkdir()
    (tmp_path / "cupy" / "__init__.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "cupy", None)      # so that the fake is taken out after the test
    del sys.modules["cupy"]


def test_gpu_tests_skip_without_cupy_and_fail_on_a_broken_one(monkeypatch, tmp_path):
    from tests.gpu.conftest import _cupy_or_skip
    monkeypatch.setitem(sys.modules, "cupy", None)              # "not installed"
    with pytest.raises(pytest.skip.Exception, match="CuPy is not installed"):
        _cupy_or_skip()
    _fake_cupy(tmp_path, monkeypatch, "raise ImportError('libcudart.so.12: cannot open shared object file')\n")
    with pytest.raises(ImportError, match="libcudart"):
        _cupy_or_skip()


def test_gpu_tests_skip_without_a_device_and_fail_on_other_errors(monkeypatch, tmp_path):
    from tests.gpu.conftest import _cupy_or_skip
    _fake_cupy(tmp_path, monkeypatch, """
import types
class CUDARuntimeError(RuntimeError):
    pass
def getDeviceCount():
    raise FAULT
runtime = types.SimpleNamespace(CUDARuntimeError=CUDARuntimeError, getDeviceCount=getDeviceCount)
cuda = types.SimpleNamespace(runtime=runtime)
FAULT = CUDARuntimeError('cudaErrorNoDevice: no CUDA-capable device is detected')
""")
    with pytest.raises(pytest.skip.Exception, match="cannot reach a GPU: cudaErrorNoDevice"):
        _cupy_or_skip()
    sys.modules["cupy"].FAULT = AttributeError("module 'cupy' has no attribute 'cuda' (half-installed)")
    with pytest.raises(AttributeError, match="half-installed"):
        _cupy_or_skip()
