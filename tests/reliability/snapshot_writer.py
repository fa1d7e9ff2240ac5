"""Train lenet_digits with a snapshot every 2 iterations into PREFIX; freeze (sleep) at the
N-th fsync of the atomic writer, printing FROZEN, so that the test can SIGKILL us mid-write.
``snapshot_writer.py PREFIX N``"""
import sys
import time

from firecaffe.core import atomic, backend
from firecaffe.proto import io
from firecaffe.solvers import Solver

prefix, freeze_at = sys.argv[1], int(sys.argv[2])
calls = [0]
real_fsync = atomic.os.fsync


class FreezingOs:
    def __getattr__(self, name):
        return getattr(atomic.__dict__["_real_os"], name)

    @staticmethod
    def fsync(fd):
        calls[0] += 1
        if calls[0] == freeze_at:
            print("FROZEN", flush=True)
            time.sleep(60)
        return real_fsync(fd)


atomic._real_os = atomic.os
atomic.os = FreezingOs()
backend.set_mode_cpu()
param = io.read_solver("nets/lenet_digits/solver.prototxt")
param.display = param.test_interval = 0
del param.test_iter[:]
param.snapshot, param.snapshot_prefix, param.max_iter = 2, prefix, 10
Solver(param).solve()
