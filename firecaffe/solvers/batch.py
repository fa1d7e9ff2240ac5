"""The batch arithmetic of a data-parallel run, and the learning-rate scaling built on it.

* ``BatchPlan``: the train net's batch as written (the solver's batch, the one
  its learning rate was tuned for), the batch per rank, the global batch, and
  the ratio k of the two that ``--lr-scaling linear`` multiplies base_lr by.
* ``lr_scaling``: base_lr times k, and Goyal et al. 2017's gradual warm-up
  (``--warmup-iters N``: the rate rises linearly from the solver's base_lr to
  k * base_lr over N iterations, a factor on whatever the lr_policy gives).
* ``compare_resumed_batch``: a snapshot taken with another global batch is named.
"""
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


def lr_scaling(plan, base_lr, scaling, warmup_iters, speak=True):
    """``(base_lr, factor)``: the rate --lr-scaling gives (``factor(iteration)`` on the policy's rate, or
    None). ``scaling`` "none" warns (``speak``: rank 0) when the global batch outgrew the net's."""
    k = plan.ratio
    if scaling == "none":
        if warmup_iters:
            raise FirecaffeError("--warmup-iters needs --lr-scaling linear (it ramps up to the scaled rate)")
        if k and k > 1 and speak:
            LOGGER.warning(f"the global batch ({plan.global_batch}) is {k:g}x the net's batch ({plan.written}) "
                           f"and the learning rate is unchanged (base_lr {base_lr:g}); "
                           "for the same curve consider --lr-scaling linear --warmup-iters N (Goyal et al. 2017)")
        return base_lr, None
    if k is None:
        raise FirecaffeError("--lr-scaling linear: the train net has no data layer with a batch_size")
    if k != int(k) or k < 1:
        raise FirecaffeError(f"--lr-scaling linear: the global batch {plan.global_batch} must be a multiple of "
                             f"the net's batch {plan.written}")
    scaled = base_lr * k
    if speak:
        ramp = f", reached after a linear warm-up of {warmup_iters} iterations" if warmup_iters else ""
        LOGGER.info(f"--lr-scaling linear: base_lr {base_lr:g} x {k:g} (global batch {plan.global_batch} / "
                    f"net batch {plan.written}) = {scaled:g}{ramp}")
    return scaled, (_warmup(int(k), warmup_iters) if warmup_iters else None)


def _warmup(k, iters):
    def factor(iteration):
        if iteration >= iters:
            return 1.0
        return 1.0 / k + (1.0 - 1.0 / k) * iteration / iters
    return factor


def compare_resumed_batch(restored, plan, given, speak=True):
    """After a restore: name a change of ranks or global batch (kept when --global-batch was ``given``).
    ``restored``: ``(global batch, workers)`` the snapshot recorded (either may be None)."""
    old, old_workers = restored
    if not speak or old is None or plan.global_batch is None:
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
