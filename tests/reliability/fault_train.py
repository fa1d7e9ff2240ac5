"""`firecaffe train` with one injected fault: ``fault_train.py RANK ITER KIND -- TRAIN ARGS...``.

On world rank RANK, at iteration ITER:
  raise       a RuntimeError just before the gradient reduction
  kill        SIGKILL itself just before the gradient reduction (mid-iteration)
  kill-mid    SIGKILL itself inside the reduction, after its second MPI call (mid-collective)
  sleep:S     sleep S seconds before the reduction (a stall)
  sleep-fwd:S sleep S seconds before forward (a stall while the others' backward, and with
              --bucket-mb their bucket reductions, already run)
  nan-grad    put a NaN into layer ip1's weight gradient after backward
  kill-server on a parameter server rank: SIGKILL itself after summing ITER pushes
  raise-server on a parameter server rank: raise a RuntimeError after summing ITER pushes
  slow-snapshot:S  the snapshot of iteration ITER: after its weights file, print WRITING THE SNAPSHOT
              and sleep S seconds before the solver state (a big net's snapshot, mid-write)
  slow-exit:S after training, its signal handling given back (the process's teardown, before
              MPI_Finalize): print TRAINING OVER and sleep S seconds (ITER unused)
"""
import os
import signal
import sys
import time

from mpi4py import MPI

from firecaffe import cli
from firecaffe.run import parallel
from firecaffe.comm import ps
from firecaffe.core import integrity
from firecaffe.solvers.solver import Solver

RANK, ITER, KIND = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ARGS = sys.argv[sys.argv.index("--") + 1:]
ME = MPI.COMM_WORLD.Get_rank()


def die():
    os.kill(os.getpid(), signal.SIGKILL)


class KillingComm:
    """Forwards to an MPI communicator; SIGKILLs this process before its ``after``-th call."""

    def __init__(self, comm, after):
        self._comm, self._calls, self._after = comm, 0, after

    def __getattr__(self, name):
        target = getattr(self._comm, name)
        if not callable(target) or name.startswith("Get_"):
            return target

        def call(*args, **kwargs):
            self._calls += 1
            if self._calls >= self._after:
                die()
            return target(*args, **kwargs)
        return call


original_step = parallel.DataParallel.step


def step(self, iteration, params, display=False):
    if ME == RANK and iteration == ITER:
        if KIND == "raise":
            raise RuntimeError("injected fault")
        if KIND == "kill":
            die()
        if KIND.startswith("sleep:"):
            time.sleep(float(KIND.split(":")[1]))
        if KIND == "kill-mid":
            strategy = self.strategy
            if hasattr(strategy, "world"):       # parameter server worker: talks over the whole world
                strategy.world = KillingComm(strategy.world, 2)
            else:
                strategy.comm = KillingComm(strategy.comm, 2)
    return original_step(self, iteration, params, display)


original_gather = ps.ParameterServer._gather_sum
served = [0]


def gather_sum(self, *args):
    result = original_gather(self, *args)
    served[0] += 1
    if ME == RANK and served[0] > ITER:
        if KIND == "kill-server":
            die()
        if KIND == "raise-server":
            raise RuntimeError("injected fault in the parameter server")
    return result


original_forward_backward = Solver._forward_backward


def forward_backward(self):
    if ME == RANK and KIND.startswith("sleep-fwd:") and self.iter == ITER:
        time.sleep(float(KIND.split(":")[1]))
    loss = original_forward_backward(self)
    if ME == RANK and KIND == "nan-grad" and self.iter == ITER:
        self.net.layer_dict["ip1"].blobs[0].diff[0] = float("nan")
    return loss


original_write_checksum = integrity.write


def write_then_sleep(path):
    original_write_checksum(path)
    if KIND.startswith("slow-snapshot:") and path.endswith(f"_iter_{ITER}.caffemodel"):
        print("WRITING THE SNAPSHOT", flush=True)
        time.sleep(float(KIND.split(":")[1]))


integrity.write = write_then_sleep
parallel.DataParallel.step = step
Solver._forward_backward = forward_backward
ps.ParameterServer._gather_sum = gather_sum
sys.argv = ["firecaffe"] + ARGS
cli.main(ARGS)
if ME == RANK and KIND.startswith("slow-exit:"):
    print("TRAINING OVER", flush=True)
    time.sleep(float(KIND.split(":")[1]))
