"""A NaN or Inf in the loss or the gradients stops training with the iteration and the first layer affected."""
import numpy as np
import pytest

from firecaffe.core import backend
from firecaffe.errors import FirecaffeError
from firecaffe.proto import io
from firecaffe.solvers import Solver


@pytest.fixture
def solver(monkeypatch, tmp_path):
    from pathlib import Path
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    backend.set_mode_cpu()
    param = io.read_solver("nets/lenet_digits/solver.prototxt")
    param.display = param.test_interval = 0
    del param.test_iter[:]
    param.snapshot, param.snapshot_prefix = 2, str(tmp_path / "lenet")
    return Solver(param)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_an_infinite_weight_names_the_first_layer_whose_output_is_not_finite(solver):
    solver.step(2)
    solver.net.layer_dict["ip1"].blobs[0].data[0, 0] = np.inf
    with pytest.raises(FirecaffeError) as error:
        solver.step(1)
    message = str(error.value)
    assert message.startswith("Iteration 2: the loss is nan; first non-finite output: blob 'ip1' of layer "
                              "'ip1' (InnerProduct)"), message
    assert f"the last snapshot, {solver.param.snapshot_prefix}_iter_2.solverstate, is kept" in message


def test_a_nan_gradient_names_the_layer_whose_backward_made_it(solver, monkeypatch):
    layer = solver.net.layer_dict["conv2"]
    real_backward = layer.backward

    def poisoned(top, propagate_down, bottom):
        real_backward(top, propagate_down, bottom)
        layer.blobs[1].diff[0] = np.nan

    monkeypatch.setattr(layer, "backward", poisoned)
    with pytest.raises(FirecaffeError) as error:
        solver.step(1)
    assert str(error.value).startswith("Iteration 0: the gradients are not finite; first non-finite gradient "
                                       "(in backward order): parameter 1 of layer 'conv2' (Convolution)")


def test_finite_steps_are_untouched(solver):
    solver.step(3)
    assert solver.iter == 3


def test_nan_in_hdf5_input_names_the_file_and_row_not_the_learning_rate(tmp_path, capsys, monkeypatch):
    """A NaN in the training data is the data's fault: the message names the file and the row."""
    import h5py
    from pathlib import Path
    from firecaffe import cli
    repo = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(repo)
    with h5py.File(repo / "nets/lenet_digits/train.h5") as f:
        data, label = f["data"][()], f["label"][()]
    data[70, 0, 3, 4] = np.nan                     # row 70: the second batch of 64
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["data"], f["label"] = data, label
    (tmp_path / "train.txt").write_text(f"{tmp_path / 'bad.h5'}\n")
    net = tmp_path / "net.prototxt"
    net.write_text((repo / "nets/lenet_digits/train_test.prototxt").read_text()
                   .replace("nets/lenet_digits/train.txt", str(tmp_path / "train.txt")))
    solver_file = tmp_path / "solver.prototxt"
    solver_file.write_text((repo / "nets/lenet_digits/solver.prototxt").read_text()
                           .replace('"nets/lenet_digits/train_test.prototxt"', f'"{net}"'))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", str(solver_file), "--max-iter", "4",
                  "--test-interval", "0", "--snapshot-prefix", str(tmp_path / "x")])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("firecaffe:")]
    assert exit_info.value.code == 1 and len(lines) == 1, err
    assert "Iteration 1: the loss is nan; the input is not finite: blob 'data' of data layer 'digits'" in lines[0]
    assert f"{tmp_path / 'bad.h5'}, row 70" in lines[0] and "base_lr" not in lines[0], lines[0]
