"""Solvers with Caffe's semantics, and pycaffe's classes for them (pycaffe.py)."""
from .solver import Solver
from .pycaffe import (get_solver, SGDSolver, NesterovSolver, AdaGradSolver, RMSPropSolver,  # noqa: F401
                      AdaDeltaSolver, AdamSolver)

__all__ = ["Solver", "get_solver", "SGDSolver", "NesterovSolver", "AdaGradSolver",
           "RMSPropSolver", "AdaDeltaSolver", "AdamSolver"]
