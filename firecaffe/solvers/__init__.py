"""Solvers with Caffe's semantics, and pycaffe's constructors for them."""
from .solver import Solver

SOLVER_TYPES = ("SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam")


def get_solver(path, **kwargs):
    """A Solver for the solver.prototxt at ``path`` (its ``type`` picks the update rule)."""
    return Solver(path, **kwargs)


def _typed(type_name):
    def make(path, **kwargs):
        from ..proto import io
        param = io.read_solver(path) if isinstance(path, str) else path
        param.type = type_name
        return Solver(param, path=path if isinstance(path, str) else None, **kwargs)
    make.__name__ = f"{type_name}Solver"
    make.__doc__ = f"A {type_name} solver for the solver.prototxt at ``path``, as pycaffe's {type_name}Solver."
    return make


SGDSolver = _typed("SGD")
NesterovSolver = _typed("Nesterov")
AdaGradSolver = _typed("AdaGrad")
RMSPropSolver = _typed("RMSProp")
AdaDeltaSolver = _typed("AdaDelta")
AdamSolver = _typed("Adam")

__all__ = ["Solver", "get_solver", "SGDSolver", "NesterovSolver", "AdaGradSolver",
           "RMSPropSolver", "AdaDeltaSolver", "AdamSolver"]
