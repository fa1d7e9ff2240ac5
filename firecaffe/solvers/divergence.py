"""Stop a diverging run at the first NaN or Inf, saying where it came from.

``check_step(solver, loss)`` runs after forward and backward, before the
gradients are reduced across ranks (so the rank that produced them is the one
that reports). It costs one sum over the gradient arena per iteration; only when
the loss or that sum is not finite does it look for the culprit: the first layer,
in forward order, whose output is not finite, or else (the values were finite,
backward broke them) the first layer, in backward order, that wrote a
non-finite gradient into its parameters or its inputs.
"""
import math

import numpy as np

from ..core import backend
from ..errors import FirecaffeError


def check_step(solver, loss):
    """Raise a FirecaffeError naming the iteration and the layer if loss or gradients are not finite."""
    net = solver.net
    bad_loss = not math.isfinite(loss)
    if not bad_loss and ((solver.parallel is not None and solver.parallel.reducer is not None) or _finite_sum(net.diff_arena)):
        return              # (with bucketed reduction the arena is already being summed: the loss check remains)
    if not bad_loss and _all_finite(net.diff_arena):
        return              # the float sum overflowed, yet every gradient is finite
    what = f"the loss is {loss}" if bad_loss else "the gradients are not finite"
    data = bad_input(net)
    if data:
        raise FirecaffeError(f"Iteration {solver.iter}: {what}; {data}. Training stopped: the data itself "
                             "holds NaN or Inf (not a learning-rate problem); fix or drop those samples.")
    last = solver.last_snapshot
    kept = f"the last snapshot, {last}, is kept" if last else "no snapshot was taken before it"
    raise FirecaffeError(f"Iteration {solver.iter}: {what}; {first_bad_layer(net)}. Training stopped "
                         f"(diverged); {kept}. Try a lower base_lr or clip_gradients.")


def bad_input(net):
    """Words naming the first non-finite value a data layer produced (its file and row when the
    layer knows them), or None when every data layer's output is finite."""
    for layer, top in zip(net.layers, net.top_vecs):
        if not getattr(layer, "is_data", False):
            continue
        for blob in top:
            if _all_finite(blob.data):
                continue
            host = backend.to_host(blob.data)
            rows = host.reshape(len(host), -1) if host.ndim > 1 else host.reshape(-1, 1)
            sample = int(np.flatnonzero(~np.isfinite(rows).all(axis=1))[0])
            origin = layer.describe_sample(sample)
            return (f"the input is not finite: blob '{blob.name}' of data layer '{layer.name}' ({layer.type}), "
                    f"sample {sample} of the batch" + (f", read from {origin}" if origin else ""))
    return None


def first_bad_layer(net):
    """Words naming where the first non-finite value of the last forward/backward appears."""
    for layer, top in zip(net.layers, net.top_vecs):
        for blob in top:
            if not _all_finite(blob.data):
                return f"first non-finite output: blob '{blob.name}' of layer '{layer.name}' ({layer.type})"
    for i in reversed(range(len(net.layers))):
        layer = net.layers[i]
        for k, blob in enumerate(layer.blobs):
            if not _all_finite(blob.diff):
                return (f"first non-finite gradient (in backward order): parameter {k} of layer "
                        f"'{layer.name}' ({layer.type})")
        for blob in net.bottom_vecs[i]:
            if net.layer_need_backward[i] and not _all_finite(blob.diff):
                return (f"first non-finite gradient (in backward order): the gradient layer "
                        f"'{layer.name}' ({layer.type}) wrote for its input '{blob.name}'")
    return "no layer output or gradient holds the non-finite value (it arose in the loss sum)"


def _finite_sum(array):
    return math.isfinite(float(backend.to_host(array.sum())))


def _all_finite(array):
    xp = backend.xp_of(array)
    return bool(xp.isfinite(array).all())
