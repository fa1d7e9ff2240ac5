"""pycaffe's solver classes: ``caffe.Solver`` and one class per update rule
(``SGDSolver``, and ``NesterovSolver`` ... ``AdamSolver``, subclasses of SGDSolver
as in Caffe), ``get_solver`` and ``share_weights``.

They are thin classes over solver.Solver (same constructor), so a script's
``isinstance(solver, caffe.SGDSolver)`` works and ``get_solver`` returns the class
of the file's ``type``. The command line builds solver.Solver itself.
"""
from . import solver as _core


class Solver(_core.Solver):
    """pycaffe's caffe.Solver: a solver.Solver with pycaffe's share_weights."""

    def share_weights(self, net):
        """Make ``net`` read this solver's train net weights by layer name, without
        copies (pycaffe's solver.share_weights, Caffe's ShareTrainedLayersWith)."""
        net.share_with(self.net)


class SGDSolver(Solver):
    """A solver whose update rule is the class's (pycaffe's SGDSolver(filename));
    ``solver`` is a solver.prototxt path or a SolverParameter, whose ``type`` the class sets."""

    type_name = "SGD"

    def __init__(self, solver, **kwargs):
        from ..proto import caffe_pb2, io
        param = caffe_pb2.SolverParameter()
        param.CopyFrom(io.read_solver(solver) if isinstance(solver, str) else solver)
        param.type = self.type_name
        if isinstance(solver, str):
            kwargs.setdefault("path", solver)
        super().__init__(param, **kwargs)


class NesterovSolver(SGDSolver):
    type_name = "Nesterov"


class AdaGradSolver(SGDSolver):
    type_name = "AdaGrad"


class RMSPropSolver(SGDSolver):
    type_name = "RMSProp"


class AdaDeltaSolver(SGDSolver):
    type_name = "AdaDelta"


class AdamSolver(SGDSolver):
    type_name = "Adam"


SOLVER_CLASSES = {cls.type_name: cls for cls in (SGDSolver, NesterovSolver, AdaGradSolver,
                                                  RMSPropSolver, AdaDeltaSolver, AdamSolver)}


def get_solver(path, **kwargs):
    """The solver for the solver.prototxt at ``path``, of the class its ``type`` names
    (Solver itself for a type it does not know, which the checks then name)."""
    from ..proto import io
    param = io.read_solver(path) if isinstance(path, str) else path
    cls = SOLVER_CLASSES.get(param.type, Solver)
    if isinstance(path, str):
        kwargs.setdefault("path", path)
    return cls(param, **kwargs)
