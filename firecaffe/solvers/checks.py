"""Solver fields checked before any work (Caffe finds some of these only at the first step)."""
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


def validate_lr_policy(p, path):
    """The policy and its parameters, at both ends of the run, before any work."""
    where = path or "solver"
    try:
        for iteration in {0, max(p.max_iter, 0)}:
            lr_policy.learning_rate(p, iteration)
    except FirecaffeError as exc:
        raise FirecaffeError(f"{where}: {str(exc).removeprefix('solver: ')}") from None
