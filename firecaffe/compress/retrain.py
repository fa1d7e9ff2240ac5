"""Retraining under Deep Compression's constraints, as observers of the Solver's step.

Both act at the Solver's ``reduced`` hook: after the gradients were summed across ranks and
scaled by 1/p, just before the update rule, on every rank that updates a window of the arenas
(all of it for peers, a shard on a parameter server). Nothing is patched or copied.

``Masks`` (pruning): the gradient, the weight and every history array of the rule are
multiplied by the mask. With a zero gradient, a zero weight (so zero weight decay, L1 or L2)
and zero history, every rule's step is exactly zero (SGD and Nesterov's momentum, AdaGrad,
RMSProp, AdaDelta and Adam's moments), so a pruned weight stays 0.0 through the update,
through snapshots (it is 0.0 there) and after a resume (history and weights re-masked).

``SharedWeights`` (trained quantization): each weight's gradient is replaced by its
centroid's gradient, the sum of the gradients of all weights sharing that centroid (summed
across parameter servers when the layer is split between shards). Weights sharing a centroid
start equal with equal history and then receive equal gradients, so the rule moves them as
one: the centroid is updated by the rule with the summed gradient, and the layer keeps at
most 2**bits distinct values; pruned weights (code ``k``) get no gradient.
"""
import numpy as np

from ..core import backend
from ..errors import FirecaffeError


class Masks:
    """Keep pruned weights at exactly zero; ``masks``: {layer name: boolean array}."""

    def __init__(self, solver, masks):
        net = solver.net
        xp = backend.xp_of(net.param_arena)
        flat = np.ones(net.param_arena.size, dtype=net.dtype)
        for name, mask in masks.items():
            offset, count = _place(net, name)
            flat[offset:offset + count] = np.asarray(mask, dtype=net.dtype).reshape(-1)
        self.solver, self.mask = solver, xp.asarray(flat)
        self.apply(slice(None))

    def attach(self):
        self.solver.hooks.add("reduced", self._on_reduced, first=True)
        return self

    def detach(self):
        self.solver.hooks.remove("reduced", self._on_reduced)

    def _on_reduced(self, iteration, window, sum_across):
        self.apply(window)

    def apply(self, window):
        net, mask = self.solver.net, self.mask[window]
        net.diff_arena[window] *= mask
        net.param_arena[window] *= mask
        for history in self.solver.rule.history:
            history[window] *= mask


class SharedWeights:
    """Trained quantization; ``layers``: {layer name: (codebook, codes)} with codes in 0..k-1 for
    the codebook's values and k for a pruned weight."""

    def __init__(self, solver, layers):
        net = solver.net
        xp = backend.xp_of(net.param_arena)
        self.solver, self.xp, self.layers = solver, xp, []
        for name, (codebook, codes) in layers.items():
            offset, count = _place(net, name)
            codes = np.asarray(codes).reshape(-1)
            values = np.append(np.asarray(codebook, dtype=net.dtype), net.dtype.type(0))
            net.param_arena[offset:offset + count] = xp.asarray(values[codes])
            for history in solver.rule.history:          # equal weights start with equal history
                history[offset:offset + count] = 0
            self.layers.append((offset, count, xp.asarray(codes), len(codebook)))

    def attach(self):
        self.solver.hooks.add("reduced", self._on_reduced)
        return self

    def detach(self):
        self.solver.hooks.remove("reduced", self._on_reduced)

    def _on_reduced(self, iteration, window, sum_across):
        diff, xp = self.solver.net.diff_arena, self.xp
        start, stop, _ = window.indices(diff.size)
        for offset, count, codes, k in self.layers:
            low, high = max(start, offset), min(stop, offset + count)
            part = codes[low - offset:high - offset] if low < high else codes[:0]
            grads = xp.bincount(part, weights=diff[low:high] if low < high else diff[:0], minlength=k + 1)
            if sum_across is not None:           # the layer may span several servers' shards
                grads = xp.asarray(sum_across(backend.to_host(grads)))
            grads[k] = 0
            if low < high:
                diff[low:high] = grads[part].astype(diff.dtype)

    def codebooks(self):
        """{offset: codebook} as the weights hold it now (one representative per code)."""
        data = backend.to_host(self.solver.net.param_arena)
        out = []
        for offset, count, codes, k in self.layers:
            codes = backend.to_host(codes)
            first = np.full(k + 1, -1)
            first[codes[::-1]] = np.arange(count)[::-1]
            out.append(np.where(first[:k] >= 0, data[offset + np.maximum(first[:k], 0)], 0))
        return out


def _place(net, name):
    """(offset, count) of layer ``name``'s weight blob (its first) in the flat arenas."""
    blob = net.layer_dict[name].blobs[0]
    for candidate, offset in zip(net.learnable_params, net.param_offsets):
        if candidate is blob:
            return offset, blob.count
    raise FirecaffeError(f"layer '{name}': its weights are another layer's (a shared param); "
                         "compress the owner, or leave this layer out of --density/--quality/--bits")
