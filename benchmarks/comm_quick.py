"""Time tree, ring, mpi and ps allreduce on a few message sizes; print each one's ratio to mpi.

    mpiexec -n 5 python benchmarks/comm_quick.py            # 4 workers + 1 parameter server
    mpiexec -n 5 python benchmarks/comm_quick.py --tree-chunk-kb 64,256,1024

The last ``--servers`` ranks serve the parameter server and wait (sleeping, so
as not to steal a core from the workers) while the other strategies run. Each
time is the median over repeats of the slowest worker's time for one call.
"""
import argparse
import statistics
import time

import numpy as np
from mpi4py import MPI

from firecaffe.comm import make_strategy
from firecaffe.comm.topology import SHARED_MEMORY_CHUNK_BYTES


def sleepy_barrier(comm):
    """A barrier that sleeps instead of spinning, for ranks that sit out a measurement."""
    request = comm.Ibarrier()
    while not request.Test():
        time.sleep(0.002)


def time_allreduce(communicator, data, repeats):
    """Median over ``repeats`` of the slowest rank's seconds for one ``allreduce_`` of ``data``."""
    times = []
    flat = np.empty_like(data)
    for _ in range(repeats + 2):
        flat[:] = data  # fresh input each call: repeated sums would overflow
        communicator.worker_comm.Barrier()
        start = time.perf_counter()
        communicator.allreduce_(flat)
        elapsed = np.array(time.perf_counter() - start)
        communicator.worker_comm.Allreduce(MPI.IN_PLACE, elapsed, op=MPI.MAX)
        times.append(float(elapsed))
    return statistics.median(times[2:])  # the first two calls warm up buffers and connections


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", default="4,16")
    parser.add_argument("--tree-chunk-kb", default=str(SHARED_MEMORY_CHUNK_BYTES // 1024),
                        help="comma-separated tree chunk sizes to compare")
    parser.add_argument("--servers", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    world = MPI.COMM_WORLD
    sizes = [int(float(mb) * 2**20) // 4 for mb in args.sizes_mb.split(",")]
    setups = [(f"tree/{kb}k", "tree", {"chunk_bytes": int(kb) * 1024})
              for kb in args.tree_chunk_kb.split(",")]
    setups += [("ring", "ring", {}), ("mpi", "mpi", {})]
    rows = []
    for size in sizes:
        ps = make_strategy("ps", world, servers=args.servers)   # one per size: a server serves one size
        if not ps.is_worker:
            sleepy_barrier(world)          # asleep while the workers time the other strategies
            ps.serve(size)
            continue
        workers = ps.worker_comm
        data = np.random.default_rng(workers.rank).standard_normal(size).astype(np.float32)
        times = {label: time_allreduce(make_strategy(name, workers, **options), data, args.repeats)
                 for label, name, options in setups}
        sleepy_barrier(world)
        times["ps"] = time_allreduce(ps, data, args.repeats)
        ps.close()
        rows.append((size, times))
    if not ps.is_worker:
        return
    if workers.rank == 0:
        print(f"{ps.num_workers} workers, {args.servers} server(s), float32; "
              "seconds per allreduce and ratio to mpi")
        for size, times in rows:
            cells = "  ".join(f"{label} {t * 1e3:7.2f} ms ({t / times['mpi']:.2f}x)" for label, t in times.items())
            print(f"{size * 4 / 2**20:5.1f} MB  {cells}")


if __name__ == "__main__":
    main()
