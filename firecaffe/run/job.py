"""What a data-parallel job is, said once by rank 0, and the batch arithmetic around it.

* ``BatchPlan``: the train net's batch as written (the solver's batch, the one
  its learning rate was tuned for), the batch per rank, the global batch, and
  the ratio k of the two that ``--lr-scaling linear`` multiplies base_lr by.
* ``--warmup-iters N``: Goyal et al. 2017's gradual warm-up: the rate rises
  linearly from the solver's base_lr to k * base_lr over N iterations
  (a factor on whatever the lr_policy gives).
* ``startup_line``: ranks, nodes, strategy, global and per-rank batch, base_lr.
* ``compare_resumed_batch``: a snapshot taken with another global batch is named.
"""
import socket

from ..core.log import LOGGER
from ..errors import FirecaffeError

DATA_FIELDS = (("Data", "data_param"), ("HDF5Data", "hdf5_data_param"))


class BatchPlan:
    """Set by ``hook`` as the TRAIN net is read: the written batch, and the batch each rank uses."""

    def __init__(self, global_batch, workers):
        if global_batch is not None and global_batch % workers:
            raise FirecaffeError(f"--global-batch {global_batch} does not divide evenly among {workers} "
                                 f"worker ranks; choose a multiple of {workers}")
        self.requested, self.workers = global_batch, workers
        self.written = self.per_rank = None

    def hook(self, net_param):
        """Read (and with --global-batch, set) every TRAIN data layer's batch_size."""
        sizes = [getattr(layer, field) for layer in net_param.layer for kind, field in DATA_FIELDS
                 if layer.type == kind and layer.HasField(field)]
        if not sizes:
            if self.requested is not None:
                raise FirecaffeError("--global-batch: the train net has no data layer with a batch_size to set")
            return
        self.written = sizes[0].batch_size
        self.per_rank = self.written if self.requested is None else self.requested // self.workers
        for size in sizes:
            size.batch_size = self.per_rank

    @property
    def global_batch(self):
        return None if self.per_rank is None else self.per_rank * self.workers

    @property
    def ratio(self):
        """Global batch over the written batch (k of the linear scaling rule), or None."""
        if not self.written or self.global_batch is None:
            return None
        return self.global_batch / self.written


def apply_lr_scaling(solver, plan, scaling, warmup_iters):
    """--lr-scaling linear: base_lr *= k; with --warmup-iters, ramp up to it. Else warn when k > 1."""
    k = plan.ratio
    if scaling == "none":
        if warmup_iters:
            raise FirecaffeError("--warmup-iters needs --lr-scaling linear (it ramps up to the scaled rate)")
        if k and k > 1 and solver.is_root:
            LOGGER.warning(f"the global batch ({plan.global_batch}) is {k:g}x the net's batch ({plan.written}) "
                           f"and the learning rate is unchanged (base_lr {solver.param.base_lr:g}); "
                           "for the same curve consider --lr-scaling linear --warmup-iters N (Goyal et al. 2017)")
        return
    if k is None:
        raise FirecaffeError("--lr-scaling linear: the train net has no data layer with a batch_size")
    if k != int(k) or k < 1:
        raise FirecaffeError(f"--lr-scaling linear: the global batch {plan.global_batch} must be a multiple of "
                             f"the net's batch {plan.written}")
    base = solver.param.base_lr
    solver.param.base_lr = base * k
    if warmup_iters:
        solver.lr_factor = _warmup(int(k), warmup_iters)
    if solver.is_root:
        ramp = f", reached after a linear warm-up of {warmup_iters} iterations" if warmup_iters else ""
        LOGGER.info(f"--lr-scaling linear: base_lr {base:g} x {k:g} (global batch {plan.global_batch} / "
                    f"net batch {plan.written}) = {solver.param.base_lr:g}{ramp}")


def _warmup(k, iters):
    def factor(iteration):
        if iteration >= iters:
            return 1.0
        return 1.0 / k + (1.0 - 1.0 / k) * iteration / iters
    return factor


def startup_line(sync, plan, solver, comm_name):
    """Rank 0's one line on the job (collective under MPI: call on every rank)."""
    if sync is None:
        ranks, nodes, workers, strategy = 1, 1, 1, "none (one process)"
    else:
        hosts = sync.world.allgather(socket.gethostname())
        ranks, nodes, workers = len(hosts), len(set(hosts)), sync.num_workers
        strategy = comm_name + (f" ({ranks - workers} server rank(s))" if workers != ranks else "")
    if not solver.is_root:
        return
    batch = (f"global batch {plan.global_batch} ({plan.per_rank} per rank x {workers} worker(s)"
             f"{', iter_size %d' % solver.param.iter_size if solver.param.iter_size > 1 else ''})"
             if plan.global_batch else "batch: no data layer")
    LOGGER.info(f"Job: {ranks} rank(s) on {nodes} node(s), strategy {strategy}, {batch}, "
                f"base_lr {solver.param.base_lr:g}")


def compare_resumed_batch(solver, plan, given):
    """After a restore: name a change of ranks or global batch (kept when --global-batch was given)."""
    old, old_workers = getattr(solver, "restored_batch", (None, None))
    if not solver.is_root or old is None or plan.global_batch is None:
        return
    if old == plan.global_batch and old_workers in (None, plan.workers):
        return
    was = f"global batch {old}" + (f" on {old_workers} worker(s)" if old_workers else "")
    if given:
        LOGGER.info(f"resuming a snapshot taken with {was}: now global batch {plan.global_batch} "
                    f"({plan.per_rank} per rank x {plan.workers}), kept by --global-batch")
    elif old != plan.global_batch:
        LOGGER.warning(f"resuming a snapshot taken with {was}: the global batch is now {plan.global_batch} "
                       f"({plan.per_rank} per rank x {plan.workers}); pass --global-batch {old} to keep it")
