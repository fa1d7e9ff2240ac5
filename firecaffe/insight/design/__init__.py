"""Write Caffe nets from design metaparameters (the command is `firecaffe design`, cli/design.py).

prototxt.py renders (field, value) lists as prototxt text; builder.py's
``NetBuilder`` writes a net layer by layer and asks the engine (a shapes-only
Net, insight.analysis) for blob shapes, parameters and FLOPs; squeezenet.py is
the SqueezeNet family of the SqueezeNet paper's metaparameters. The zoo nets in
nets/ are written by nets/_gen/zoo.py with the same builder.
"""
from .builder import NetBuilder, build_for_shapes, multiply_adds
from .prototxt import IMAGENET_MEAN, LEARN, MSRA, XAVIER, Enum, constant, gaussian, render, solver_text
from .squeezenet import (SQUEEZENET_SOLVER, SQUEEZENET_SOLVER_NOTE, SQUEEZENET_V1_0, SQUEEZENET_V1_1,
                         SqueezeNetSpec, build_squeezenet, bypassed_modules, describe, paper_mb,
                         squeezenet_files, write_files, write_squeezenet)

__all__ = ["NetBuilder", "build_for_shapes", "multiply_adds", "IMAGENET_MEAN", "LEARN", "MSRA", "XAVIER",
           "Enum", "constant", "gaussian", "render", "solver_text", "SQUEEZENET_SOLVER",
           "SQUEEZENET_SOLVER_NOTE", "SQUEEZENET_V1_0", "SQUEEZENET_V1_1", "SqueezeNetSpec",
           "build_squeezenet", "bypassed_modules", "describe", "paper_mb", "squeezenet_files", "write_files",
           "write_squeezenet"]
