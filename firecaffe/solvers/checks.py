"""Solver fields checked before any work (Caffe finds some of these only at the first step)."""
import os

from ..errors import FirecaffeError
from . import lr_policy


def validate(p, path):
    """The solver's numbers, before anything is built."""
    where = path or "solver"
    if p.max_iter < 0:
        raise FirecaffeError(f"{where}: max_iter is {p.max_iter}; it must be 0 or more")
    if p.iter_size < 1:
        raise FirecaffeError(f"{where}: iter_size must be at least 1, got {p.iter_size}")
    if p.test_interval < 0 or p.display < 0 or p.snapshot < 0:
        raise FirecaffeError(f"{where}: test_interval, display and snapshot must not be negative")
    if p.average_loss < 1:
        raise FirecaffeError(f"{where}: average_loss must be at least 1, got {p.average_loss}")
    validate_net_files(p, path)


def resolve(net_path, solver_path):
    """A net path as the Solver reads it: from the working directory, else next to the solver file."""
    if os.path.exists(net_path) or solver_path is None or os.path.isabs(net_path):
        return net_path
    beside = os.path.join(os.path.dirname(solver_path), net_path)
    return beside if os.path.exists(beside) else net_path


def validate_net_files(p, path):
    """Every net file the solver names exists; the error names the solver and the field."""
    named = [(field, p.net if field == "net" else p.train_net) for field in ("net", "train_net") if p.HasField(field)]
    named += [("test_net", test_net) for test_net in p.test_net]
    for field, net_path in named:
        if os.path.exists(resolve(net_path, path)):
            continue
        looked = f"the working directory {os.getcwd()}"
        if path is not None and not os.path.isabs(net_path):
            looked += f" and next to the solver, in {os.path.dirname(os.path.abspath(path))}"
        raise FirecaffeError(f"{path or 'solver'}: {field}: \"{net_path}\": no such file (looked in {looked})")


def validate_lr_policy(p, path):
    """The policy and its parameters, at both ends of the run, before any work."""
    where = path or "solver"
    try:
        for iteration in {0, max(p.max_iter, 0)}:
            lr_policy.learning_rate(p, iteration)
    except FirecaffeError as exc:
        raise FirecaffeError(f"{where}: {str(exc).removeprefix('solver: ')}") from None
