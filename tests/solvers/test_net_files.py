"""A solver's net files are looked up before any work, and a missing one names the solver."""
import pytest

from firecaffe.errors import FirecaffeError
from firecaffe.proto import caffe_pb2
from firecaffe.solvers import checks


def test_a_missing_test_net_names_the_solver_the_field_and_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "train.prototxt").write_text("")
    solver = str(tmp_path / "sub" / "solver.prototxt")
    param = caffe_pb2.SolverParameter(net="train.prototxt", test_net=["test.prototxt"])
    with pytest.raises(FirecaffeError) as info:
        checks.validate_net_files(param, solver)
    assert str(info.value) == (f"{solver}: test_net: \"test.prototxt\": no such file (looked in the working "
                               f"directory {tmp_path} and next to the solver, in {tmp_path / 'sub'})")
    assert checks.resolve("train.prototxt", solver) == str(tmp_path / "sub" / "train.prototxt")
    (tmp_path / "sub" / "test.prototxt").write_text("")
    checks.validate_net_files(param, solver)                     # found next to the solver
