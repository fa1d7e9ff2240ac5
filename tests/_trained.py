"""lenet_digits weights trained for a few iterations, for the tests that compress a real net."""
import os

from firecaffe.proto import io
from firecaffe.solvers import Solver

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOLVER = os.path.join(REPO, "nets", "lenet_digits", "solver.prototxt")


def lenet_weights(path, iterations):
    """Train lenet_digits ``iterations`` steps with its own solver and save the weights at ``path``."""
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        param = io.read_solver(SOLVER)
        param.display = param.test_interval = 0
        solver = Solver(param, path=SOLVER, quiet=True)
        solver.step(iterations)
        solver.net.save(str(path))
    finally:
        os.chdir(cwd)
    return str(path)
