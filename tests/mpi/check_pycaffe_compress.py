"""pycaffe's solver classes with compressed gradients: ``mpiexec -n 2 python check_pycaffe_compress.py``.

A script builds the run's options (RunOptions, with ``compress``) and the data-parallel job itself and
hands both to ``caffe.SGDSolver``, as ``firecaffe train`` does for its flags. After a few steps every
rank holds the same weights, and they differ from an uncompressed run's (the codec really ran).
"""
import numpy as np
from mpi4py import MPI

import firecaffe as caffe
from firecaffe.core.options import RunOptions
from firecaffe.run.mpi_util import abort_on_error
from firecaffe.run.parallel import make_parallel

SOLVER = "nets/lenet_digits/solver.prototxt"


def weights_after(compress, steps=3):
    options = RunOptions.build(compress=compress, show_progress=False)
    solver = caffe.SGDSolver(SOLVER, options=options, parallel=make_parallel(MPI.COMM_WORLD, options))
    solver.step(steps)
    assert solver.parallel.codec.name == compress
    return np.array(solver.net.param_arena, copy=True)


@abort_on_error
def main():
    world = MPI.COMM_WORLD
    plain, coded = weights_after("none"), weights_after("int8")
    every = np.empty((world.size, coded.size), coded.dtype)
    world.Allgather(coded, every)
    same = all(np.array_equal(row, every[0]) for row in every)
    differ = not np.array_equal(plain, coded)
    close = np.abs(plain - coded).max() < 0.05
    if world.rank == 0:
        print(f"pycaffe --compress int8: same on every rank {same}, differs from none {differ}, close {close}")


main()
