"""`firecaffe python script.py`: pycaffe scripts run unchanged, `import caffe`
resolving to firecaffe for that run only (nothing named caffe is installed)."""
import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

import firecaffe

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = textwrap.dedent('''
    import sys
    import caffe
    import firecaffe
    from caffe.proto import caffe_pb2
    import caffe.io, caffe.draw, caffe.net_spec, caffe.coord_map, caffe.classifier, caffe.detector
    from caffe import layers as L, params as P
    assert caffe is firecaffe and caffe_pb2 is firecaffe.proto.caffe_pb2
    for name in ("io", "draw", "net_spec", "coord_map", "classifier", "detector"):
        assert getattr(caffe, name) is sys.modules["firecaffe." + name], name
    assert firecaffe.__spec__.name == "firecaffe"          # the alias leaves firecaffe's own specs alone
    assert caffe.io.__spec__.name == "firecaffe.io" and caffe_pb2.__spec__.name == "firecaffe.proto.caffe_pb2"
    assert caffe.io.Transformer is firecaffe.io.Transformer
    try:
        import caffe.no_such_module
    except ModuleNotFoundError as exc:
        assert exc.name == "caffe.no_such_module", exc.name
    else:
        raise AssertionError("caffe.no_such_module imported")
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 2]))
    print("ran", __name__, sys.argv[1:], isinstance(caffe.SGDSolver, type), sys.path[0] == sys.argv[2])
''')


def run(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "firecaffe", "python", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_script_saying_import_caffe_runs_as_main_with_its_arguments(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    done = run(str(script), "--flag", str(tmp_path), "x")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"ran __main__ ['--flag', '{tmp_path}', 'x'] True True"


def test_a_module_runs_with_caffe_aliased_too(tmp_path):
    (tmp_path / "caffe_user.py").write_text("import caffe, firecaffe, sys\n"
                                            "print(caffe is firecaffe, sys.argv[1:])\n")
    done = run("-m", "caffe_user", "a", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True ['a']"


def test_the_script_sees_its_exceptions_and_exit_code(tmp_path):
    script = tmp_path / "fails.py"
    script.write_text("import sys, caffe\nsys.exit(3)\n")
    assert run(str(script)).returncode == 3
    assert "no such script" in run(str(tmp_path / "missing.py")).stderr


def test_firecaffe_installs_nothing_named_caffe():
    # a real pycaffe, where there is one, stays what `import caffe` finds outside `firecaffe python`
    spec = importlib.util.find_spec("caffe")
    package_dir = os.path.dirname(firecaffe.__file__)
    assert spec is None or not (spec.origin or "").startswith(package_dir)
    assert not os.path.exists(os.path.join(ROOT, "caffe"))


BVLC = os.environ.get("FIRECAFFE_BVLC_CAFFE")      # a checkout of BVLC/caffe (its tests are not shipped)


@pytest.mark.skipif(not BVLC, reason="set FIRECAFFE_BVLC_CAFFE to a BVLC/caffe checkout to run pycaffe's own tests")
def test_pycaffes_own_test_suite_passes():
    done = run("-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore",
               os.path.join(BVLC, "python", "caffe", "test"), cwd=BVLC)
    assert done.returncode == 0, done.stdout[-3000:]
