"""Run under mpiexec: train lenet_digits for a few steps with every strategy at a
fixed global batch, and save worker 0's weights for each, for comparison with
one process training on the whole batch (tests/mpi/test_training.py).

usage: check_training.py OUT_DIR GLOBAL_BATCH STEPS [--clip=C] STRATEGY[:SERVERS] ...
(--clip sets the solver's clip_gradients: the norm spans every rank's part of the gradient)
"""
import os
import sys

import numpy as np
from mpi4py import MPI

from firecaffe.core.options import RunOptions
from firecaffe.run.parallel import make_parallel
from firecaffe.proto import io
from firecaffe.solvers import Solver

SOLVER = "nets/lenet_digits/solver.prototxt"


def run(world, out_dir, global_batch, steps, name, servers, clip=None):
    options = RunOptions(comm=name, ps_servers=servers, check_consistency=1, global_batch=global_batch)
    sync = make_parallel(world, options)
    param = io.read_solver(SOLVER)
    if clip is not None:
        param.clip_gradients = clip
    param.display = param.test_interval = 0
    del param.test_iter[:]
    solver = Solver(param, parallel=sync, options=options)
    solver.step(steps)        # parameter-server ranks run the same loop (their strategy gives them their part)
    sync.close()
    if sync.worker_rank == 0:
        tag = f"{name}{servers if name == 'ps' else ''}"
        np.save(os.path.join(out_dir, f"{tag}_{world.Get_size()}.npy"), solver.net.param_arena)


def main():
    out_dir, global_batch, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    world = MPI.COMM_WORLD
    specs, clip = sys.argv[4:], None
    if specs and specs[0].startswith("--clip="):
        clip = float(specs.pop(0).split("=")[1])
    for spec in specs:
        name, _, servers = spec.partition(":")
        run(world, out_dir, global_batch, steps, name, int(servers or 1), clip)
        world.Barrier()


if __name__ == "__main__":
    main()
