"""Time one gradient reduction per strategy, message size and rank count, under MPI.

For every (strategy, size, ranks) the first ``ranks`` ranks of the job form a
sub-communicator (for ps: ``ranks`` workers followed by ``num_servers``
servers) and the others wait in a barrier that sleeps instead of spinning, so
that they leave the cores to the ranks being measured. One timed call is:
refill the float32 array with ones, Barrier, ``allreduce_``, and the slowest
rank's elapsed time (a MAX reduction of the per-rank times). After
``warmup`` untimed calls (the first also checks the sum) come ``repeats``
timed ones; a record keeps their median, min, max and quartiles. mpi4py is
imported inside the functions that run MPI, so that ``bench report``, ``plot``
and ``fit`` (which use the pure helpers here) load without it.
"""
import platform
import statistics
import time

import numpy as np

from ...comm import make_strategy, strategy_class
from ...comm.compress import layout_from_shapes, make_codec
from ...comm.polite import PoliteComm
from ...errors import FirecaffeError
from .model import machine_kind

VERSION = 1
ITEMSIZE = 4  # float32 gradients


def sleepy_barrier(comm):
    """A barrier that sleeps between polls, for ranks that sit out a measurement."""
    request = comm.Ibarrier()
    while not request.Test():
        time.sleep(0.002)


def rank_counts(world_size, ranks=None, sweep=False):
    """The rank counts to measure: ``ranks`` as given, powers of two up to the job with ``sweep``, else the job."""
    if ranks:
        bad = [r for r in ranks if not 1 <= r <= world_size]
        if bad:
            raise FirecaffeError(f"rank counts {bad} do not fit this job of {world_size} rank(s): "
                                 f"each must be between 1 and {world_size}")
        return sorted(set(ranks))
    if sweep:
        counts = [2 ** k for k in range(1, world_size.bit_length()) if 2 ** k <= world_size]
        return sorted(set(counts + [world_size])) or [world_size]
    return [world_size]


def plan(comms, world_size, counts, servers, explicit=False):
    """``[(comm, ranks)]`` to measure. A strategy with server ranks (ps) runs ``ranks`` workers plus those."""
    steps = []
    for comm in comms:
        extra = strategy_class(comm).processes(1, servers=servers) - 1
        if not extra:
            steps.extend((comm, r) for r in counts)
            continue
        most = world_size - extra
        if most < 1:
            raise FirecaffeError(f"{comm} with {servers} server(s) needs at least {servers + 1} ranks, "
                                 f"the job has {world_size}: launch more ranks or lower --ps-servers")
        if explicit and any(r > most for r in counts):
            raise FirecaffeError(f"{comm} with {max(counts)} workers and {servers} server(s) needs "
                                 f"{max(counts) + servers} ranks, the job has {world_size}")
        steps.extend((comm, r) for r in sorted({min(r, most) for r in counts}))
    if "mpi" in comms:  # a baseline for every worker count measured, for ratio_to_mpi
        missing = sorted({r for _, r in steps} - {r for c, r in steps if c == "mpi"})
        steps.extend(("mpi", r) for r in missing)
    return steps


def check_memory(world, max_bytes, servers):
    """Fail on every rank, before allocating, if the largest message would not fit in this node's memory."""
    from mpi4py import MPI
    local = world.Split_type(MPI.COMM_TYPE_SHARED)
    # Per rank: the array and about as much again in scratch (ring segments, MPI's temporaries);
    # a ps server also keeps its shard's sum and two receive buffers.
    need = local.Get_size() * 2 * max_bytes + 3 * max_bytes
    available = _available_memory()
    ok = np.array(available is None or need <= 0.9 * available, dtype=np.int32)
    local.Free()
    world.Allreduce(MPI.IN_PLACE, ok, op=MPI.MIN)
    if not ok:
        raise FirecaffeError(f"a {max_bytes / 2**20:.0f} MiB message on every rank needs about "
                             f"{need / 2**30:.1f} GiB on a node with "
                             f"{(available or 0) / 2**30:.1f} GiB available: use smaller --sizes or fewer "
                             f"ranks per node")


def _available_memory():
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def time_allreduce(communicator, flat, repeats, warmup):
    """Per-call seconds of the slowest rank for ``repeats`` timed calls; and whether the sum was right."""
    from mpi4py import MPI
    comm = communicator.worker_comm
    times, correct = [], True
    elapsed = np.zeros(1)
    for call in range(warmup + repeats):
        flat.fill(1.0)
        comm.Barrier()
        start = time.perf_counter()
        communicator.allreduce_(flat)
        elapsed[0] = time.perf_counter() - start
        comm.Allreduce(MPI.IN_PLACE, elapsed, op=MPI.MAX)
        if call == 0:      # a lossy codec's sum of ones is near the rank count (bf16, int8: within 1%)
            tolerance = 0 if communicator.codec.lossless else 0.01 * comm.Get_size()
            correct = bool(abs(flat[0] - comm.Get_size()) <= tolerance and abs(flat[-1] - comm.Get_size()) <= tolerance)
        if call >= warmup:
            times.append(float(elapsed[0]))
    flags = np.array(correct, dtype=np.int32)
    comm.Allreduce(MPI.IN_PLACE, flags, op=MPI.MIN)
    return times, bool(flags)


def measure_one(world, comm_name, nbytes, ranks, repeats, warmup, servers, inter="tree", wait="spin",
                compress="none", shapes=None):
    """One measurement on the first ranks of ``world``: ``(times, correct, ranks per node)`` on world
    rank 0, None elsewhere. ``shapes``: the parameters the gradient holds (a net's; PowerSGD compresses
    each matrix), else one square-ish matrix."""
    from mpi4py import MPI
    rank = world.Get_rank()
    members = strategy_class(comm_name).processes(ranks, servers=servers)
    sub = world.Split(0 if rank < members else MPI.UNDEFINED, key=rank)
    result = None
    if sub != MPI.COMM_NULL:
        size = nbytes // ITEMSIZE
        per_node = ranks_per_node(sub)
        codec = make_codec(compress)
        if shapes is not None:
            codec.bind(layout_from_shapes(shapes))
        strategy = make_strategy(comm_name, sub, servers=servers, inter=inter, wait=wait, codec=codec)
        if strategy.is_worker:
            result = (*time_allreduce(strategy, np.empty(size, np.float32), repeats, warmup), per_node)
        else:
            strategy.serve(size, np.float32)
        strategy.close()
        strategy.comm.Free()
        if (strategy.comm.raw if isinstance(strategy.comm, PoliteComm) else strategy.comm) is not sub:
            sub.Free()
    sleepy_barrier(world)
    return result if rank == 0 else None


def ranks_per_node(comm):
    """The most ranks of ``comm`` that share one node's memory (the hier formula's K)."""
    from mpi4py import MPI
    node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
    local = node.Get_size()
    node.Free()
    return comm.allreduce(local, op=MPI.MAX)   # set-up metadata, not the measured path


def summarize(times, comm, nbytes, ranks, servers, repeats, warmup, correct, world_size, net=None,
              per_node=1, inter="tree", compress="none", shapes=None):
    """One JSON record for a measurement."""
    from mpi4py import MPI
    q1, median, q3 = (statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1
                      else (times[0],) * 3)
    algbw = nbytes / median if median > 0 else None
    factor = 2 * (ranks - 1) / ranks if ranks > 1 else 1.0
    return {
        "version": VERSION, "comm": comm, "bytes": nbytes, "ranks": ranks,
        "num_servers": servers if strategy_class(comm).processes(ranks, servers=servers) > ranks else 0, "world_size": world_size,
        "median_s": median, "min_s": min(times), "max_s": max(times), "q1_s": q1, "q3_s": q3,
        "repeats": repeats, "warmup": warmup, "times_s": times,
        "algbw_Bps": algbw, "busbw_Bps": algbw * factor if algbw else None, "ratio_to_mpi": None,
        "correct": correct, "dtype": "float32", "net": net, "host": platform.node(), "machine": machine_kind(),
        "ranks_per_node": per_node, "inter": inter if comm == "hier" else None,
        "mpi_library": MPI.Get_library_version().splitlines()[0].strip(),
        "compress": compress, "wire_bytes": make_codec(compress).wire_bytes(nbytes, shapes),
    }


def add_ratios(records):
    """Set ``ratio_to_mpi`` on every record with an mpi record of the same size and rank count."""
    mpi = {(r["bytes"], r["ranks"]): r["median_s"] for r in records if r["comm"] == "mpi"}
    for record in records:
        base = mpi.get((record["bytes"], record["ranks"]))
        record["ratio_to_mpi"] = record["median_s"] / base if base else None
    return records


def run(world, comms, sizes, ranks=None, sweep=False, repeats=10, warmup=2, servers=1, net=None, progress=None,
        inter="tree", wait="spin", compress="none", shapes=None):
    """Measure every strategy, size and rank count; the records on world rank 0, None elsewhere.
    ``shapes``: the parameters of ``net`` (one size: its gradient), see ``measure_one``."""
    if repeats < 1 or warmup < 0:
        raise FirecaffeError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    bad = [n for n in sizes if n < ITEMSIZE or n % ITEMSIZE]
    if bad:
        raise FirecaffeError(f"message sizes must be positive multiples of {ITEMSIZE} bytes (float32), "
                             f"got {bad}")
    world_size = world.Get_size()
    steps = plan(comms, world_size, rank_counts(world_size, ranks, sweep), servers, explicit=bool(ranks))
    check_memory(world, max(sizes), servers)
    records = []
    for nbytes in sizes:
        for comm_name, r in steps:
            if progress and world.Get_rank() == 0:
                progress(comm_name, nbytes, r)
            sends = compress_for(comm_name, compress)
            result = measure_one(world, comm_name, nbytes, r, repeats, warmup, servers, inter, wait, sends, shapes)
            if result is not None:
                times, correct, per_node = result
                records.append(summarize(times, comm_name, nbytes, r, servers, repeats, warmup, correct,
                                         world_size, net, per_node, inter, sends, shapes))
    return add_ratios(records) if world.Get_rank() == 0 else None


def compress_for(comm_name, compress):
    """``compress`` if ``comm_name`` can send through it, else none: a strategy that cannot (MPI's
    Allreduce and fp16) is measured uncompressed, the baseline in the same table."""
    try:
        strategy_class(comm_name).check_codec(make_codec(compress))
        return compress
    except FirecaffeError:
        return "none"


def format_table(records):
    """The records as a terminal table (sizes in KiB/MiB, times in ms, bandwidth in GB/s = 10^9
    bytes/s, said once under it); the "x mpi" column only when mpi was measured."""
    with_ratio = any(r["ratio_to_mpi"] for r in records)
    lines = [f"{'comm':6s} {'size':>10s} {'ranks':>5s} {'median ms':>10s} {'min ms':>9s} {'max ms':>9s} "
             f"{'algbw GB/s':>10s}" + (f" {'x mpi':>6s}" if with_ratio else "")]
    for r in records:
        ratio = (f" {r['ratio_to_mpi']:6.2f}" if r["ratio_to_mpi"] else f" {'-':>6s}") if with_ratio else ""
        extra = f"  ({r['num_servers']} server{'s' if r['num_servers'] > 1 else ''})" if r["num_servers"] else ""
        if r.get("compress", "none") != "none":
            extra += f"  --compress {r['compress']} ({human_bytes(r['wire_bytes'])} on the wire)"
        if not r["correct"]:
            extra += "  WRONG SUM"
        lines.append(f"{r['comm']:6s} {human_bytes(r['bytes']):>10s} {r['ranks']:5d} {r['median_s'] * 1e3:10.3f} "
                     f"{r['min_s'] * 1e3:9.3f} {r['max_s'] * 1e3:9.3f} {r['algbw_Bps'] / 1e9:10.3f}"
                     f"{ratio}{extra}")
    lines.append("(KiB, MiB = 2^10, 2^20 bytes; GB/s = 10^9 bytes/s)")
    return "\n".join(lines)


def human_bytes(n):
    """A size with its binary unit: '16 MiB', '1.5 MiB', '4 KiB', '12 B'."""
    for suffix, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {suffix}"
    if n >= 2**20:
        return f"{n / 2**20:.1f} MiB"
    return f"{n / 2**10:.1f} KiB" if n >= 2**10 else f"{n} B"
