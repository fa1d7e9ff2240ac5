"""Under mpiexec: the bench's `mpi` median next to a direct MPI_Allreduce timing; rank 0 prints JSON."""
import json
import statistics
import sys
import time

import numpy as np
from mpi4py import MPI

from firecaffe.insight.bench import comm as bench_comm

NBYTES = 1 << 20
REPEATS = 15


def direct_median(world):
    data = np.empty(NBYTES // 4, np.float32)
    elapsed, times = np.zeros(1), []
    for call in range(REPEATS + 2):
        data.fill(1.0)
        world.Barrier()
        start = time.perf_counter()
        world.Allreduce(MPI.IN_PLACE, data, op=MPI.SUM)
        elapsed[0] = time.perf_counter() - start
        world.Allreduce(MPI.IN_PLACE, elapsed, op=MPI.MAX)
        if call >= 2:
            times.append(float(elapsed[0]))
    return statistics.median(times)


world = MPI.COMM_WORLD
# Alternate the two, three times, so that a burst of load on the machine hits both alike (the min of each).
direct, bench = [], []
for _ in range(3):
    direct.append(direct_median(world))
    records = bench_comm.run(world, ["mpi"], [NBYTES], repeats=REPEATS, warmup=2)
    if world.Get_rank() == 0:
        bench.append(records[0]["median_s"])
if world.Get_rank() == 0:
    json.dump({"direct_s": min(direct), "bench_s": min(bench)}, sys.stdout)
