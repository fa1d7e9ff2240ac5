"""Bytes each node's link carries during one allreduce, per strategy: ``check_link_bytes.py OUT NBYTES S...``.

Runs under `firecaffe cluster exec`, one rank per node: every rank reads its
own ``eth0`` counters and its TCP retransmitted segments (inside its namespace)
before and after one allreduce of NBYTES per strategy S (after an untimed one
that opens the connections), and rank 0 writes ``{strategy: [[sent, received,
retransmitted segments] per rank]}`` to OUT as JSON.
ps uses the last rank as its server and the others as workers.
"""
import json
import sys
from pathlib import Path

import numpy as np
from mpi4py import MPI

from firecaffe.comm import make_strategy
from firecaffe.run.mpi_util import abort_on_error

STATS = Path("/sys/class/net/eth0/statistics")


def retransmitted_segments():
    """``Tcp: RetransSegs`` of this namespace (/proc/net/snmp is per network namespace)."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Tcp:")]
    names, values = lines[0], lines[1]
    return int(values[names.index("RetransSegs")])


def counters():
    return np.array([int((STATS / "tx_bytes").read_text()), int((STATS / "rx_bytes").read_text()),
                     retransmitted_segments()], np.int64)


def reduce_once(name, world, flat):
    strategy = make_strategy(name, world, servers=1)
    if strategy.is_worker:
        strategy.allreduce_(flat)
    else:
        strategy.serve(flat.size, flat.dtype)
    strategy.close()


def main(out, nbytes, strategies):
    world = MPI.COMM_WORLD
    flat = np.ones(nbytes // 4, np.float32)
    results = {}
    for name in strategies:
        reduce_once(name, world, flat)  # connections open on first use
        world.Barrier()
        before = counters()             # read before the barrier: no rank sends until all have read
        world.Barrier()
        reduce_once(name, world, flat)
        world.Barrier()
        delta = counters() - before
        results[name] = world.gather(delta.tolist(), root=0)
    if world.rank == 0:
        Path(out).write_text(json.dumps(results))


if __name__ == "__main__":
    abort_on_error()
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
