"""What a data-parallel job is, said once by rank 0: ranks, nodes, strategy, global and per-rank batch,
base_lr (the batch arithmetic itself is solvers/batch.py)."""
import socket

from ..core.log import LOGGER


def startup_line(sync, solver, comm_name):
    """Rank 0's one line on the job (collective under MPI: call on every rank)."""
    if sync is None:
        ranks, nodes, workers, strategy = 1, 1, 1, "none (one process)"
    else:
        hosts = sync.world.allgather(socket.gethostname())
        ranks, nodes, workers = len(hosts), len(set(hosts)), sync.num_workers
        strategy = comm_name + (f" ({ranks - workers} server rank(s))" if workers != ranks else "")
    if not solver.is_root:
        return
    plan = solver.plan
    batch = (f"global batch {plan.global_batch} ({plan.per_rank} per rank x {workers} worker(s)"
             f"{', iter_size %d' % solver.param.iter_size if solver.param.iter_size > 1 else ''})"
             if plan.global_batch else "batch: no data layer")
    LOGGER.info(f"Job: {ranks} rank(s) on {nodes} node(s), strategy {strategy}, {batch}, "
                f"base_lr {solver.param.base_lr:g}")
