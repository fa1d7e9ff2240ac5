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
