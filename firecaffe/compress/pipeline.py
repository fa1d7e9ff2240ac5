"""Deep Compression's pipeline on a net's weights: prune, (retrain), quantize, (retrain), encode.

The weights travel as ``Weights``: an ordered list of layers (name, type, [float32 arrays]),
read from a .caffemodel, a Caffe HDF5 file or a .fcz, or taken from a Net. The stages are
functions on it; retraining runs a Solver with the observers of ``retrain.py`` attached and
reads the weights back. The input file is only ever read.
"""
import time

import numpy as np

from .. import fcz
from ..core import backend
from ..core.log import LOGGER
from ..errors import FirecaffeError
from ..fcz import quantize
from . import prune, retrain


class Weights:
    """A net's weights by layer: ``layers`` = [(name, type, [float32 arrays])]."""

    def __init__(self, name, layers):
        self.name, self.layers = name, [(n, t, [np.asarray(a, dtype=np.float32) for a in arrays])
                                        for n, t, arrays in layers]

    @classmethod
    def read(cls, path):
        """The weights of a file (read only: the arrays are this process's own copies)."""
        if fcz.looks_like(path):
            return cls(*fcz.read(path))
        from ..core import integrity
        from ..proto import caffemodel, io
        integrity.verify(path)
        if not str(path).endswith(".h5"):
            found = caffemodel.read_weights(path)
            if found is not None and found[1]:
                return cls(*found)
        if str(path).endswith(".h5"):
            from ..engine.weights import _hdf5_layers
            return cls("", [(name, "", arrays) for name, arrays in _hdf5_layers(path) if arrays])
        param = io.read_caffemodel(path)
        layers = [(lp.name, lp.type, [io.blob_to_array(b, np.float32) for b in lp.blobs])
                  for lp in param.layer if len(lp.blobs)]
        if not layers:
            raise FirecaffeError(f"{path}: holds no layer with weights (empty or truncated?)")
        return cls(param.name, layers)

    @classmethod
    def of_net(cls, net):
        return cls(net.name, [(layer.name, lp.type, [backend.to_host(b.data) for b in layer.blobs])
                              for layer, lp in zip(net.layers, net.param.layer) if layer.blobs])

    def kinds(self, net_kinds=None):
        """{layer: type}; a weights file without types (HDF5) takes them from the net's."""
        return {name: kind or (net_kinds or {}).get(name, "") for name, kind, _ in self.layers}

    def weight(self, name):
        return next(arrays[0] for n, _, arrays in self.layers if n == name)

    def set_weight(self, name, array):
        for n, _, arrays in self.layers:
            if n == name:
                arrays[0] = np.asarray(array, dtype=np.float32).reshape(arrays[0].shape)

    def into(self, net):
        """Copy these weights into ``net`` (by layer name, as a .caffemodel would be)."""
        from ..proto import caffe_pb2, io
        param = caffe_pb2.NetParameter(name=self.name)
        for name, kind, arrays in self.layers:
            layer = param.layer.add(name=name, type=kind)
            for array in arrays:
                layer.blobs.add().CopyFrom(io.array_to_blob(array))
        net.copy_from(param)

    def layers_from(self, template):
        """These weights, on the layers of ``template`` (the weights file's layers, in its order)."""
        mine = {name: arrays for name, _, arrays in self.layers}
        self.layers = [(name, kind, mine.get(name, arrays)) for name, kind, arrays in template.layers]
        self.name = template.name or self.name
        return self

    @property
    def parameters(self):
        return sum(a.size for _, _, arrays in self.layers for a in arrays)


def prune_step(weights, plan, fraction=1.0):
    """Prune every layer of ``plan`` that prunes, in place; ``fraction`` in (0, 1] of the way from
    density 1 to the target (geometrically: an iterative schedule). Returns {layer: mask}."""
    masks = {}
    for name in plan.layers:
        if not plan.prunes(name):
            continue
        w = _writable(weights, name)
        if name in plan.density:
            mask = prune.mask_by_density(w, plan.density[name] ** fraction)
        else:
            mask = prune.mask_by_quality(w, plan.quality[name] * fraction)
        w[~mask] = 0
        masks[name] = mask
    return masks


def quantize_step(weights, plan):
    """Share weights by k-means in every layer of the plan, in place: 2**bits values (one of them
    zero for a pruned layer). Returns {layer: (codebook, kept positions, their codes)}."""
    shared = {}
    for name in plan.layers:
        w = _writable(weights, name).reshape(-1)
        kept = np.flatnonzero(w)
        k = (1 << plan.bits[name]) - (1 if kept.size < w.size else 0)
        codebook, codes = quantize.codebook_for(w[kept], k)
        w[kept] = codebook[codes]
        shared[name] = (codebook, kept, codes)
    return shared


def full_codes(shared, weights):
    """{layer: (codebook, codes)} for ``retrain.SharedWeights``: a code per weight, len(codebook) if pruned."""
    out = {}
    for name, (codebook, kept, codes) in shared.items():
        full = np.full(weights.weight(name).size, codebook.size, dtype=np.int32)
        full[kept] = codes
        out[name] = (codebook, full)
    return out


def _writable(weights, name):
    w = weights.weight(name)
    if not w.flags.writeable:
        w = w.copy()
        weights.set_weight(name, w)
    return w


def retrain_step(solver, weights, iterations, masks=None, shared=None):
    """Train ``iterations`` with pruned weights held at zero (and weights shared); weights read back."""
    weights.into(solver.net)
    if solver.parallel is not None:
        solver.parallel.broadcast_weights(solver.net)
    observers = []
    if masks:
        observers.append(retrain.Masks(solver, masks).attach())
    if shared:
        observers.append(retrain.SharedWeights(solver, full_codes(shared, weights)).attach())
    try:
        solver.step(iterations)
    finally:
        for observer in observers:
            observer.detach()
    if solver.parallel is not None:          # a parameter server holds only its shard up to date:
        solver.parallel.broadcast_weights(solver.net)      # every rank takes rank 0's (a worker's)
    return Weights.of_net(solver.net).layers_from(weights)


def encode_layers(weights, plan, bits=True):
    """.fcz layer list: compressed layers' weights with their bits and index width, the rest raw."""
    layers = []
    for name, kind, arrays in weights.layers:
        options = [{} for _ in arrays]
        if name in plan.kinds and arrays:
            options[0] = {"bits": plan.bits[name] if bits else None, "width": plan.index_bits.get(name)}
        layers.append((name, kind, list(zip(arrays, options))))
    return layers


def accuracy(solver):
    """The test net's accuracy (its first output named like 'accuracy', else its first output)."""
    if not solver.test_nets:
        return None
    outputs = solver.test(0)
    names = [n for n in outputs if "accuracy" in n.lower()] or list(outputs)
    return float(np.ravel(outputs[names[0]])[0]) if names else None


class Progress:
    """One line per stage on rank 0: what was done, how long it took."""

    def __init__(self, speak=True):
        self.speak, self.began = speak, time.perf_counter()

    def __call__(self, stage, text):
        if self.speak:
            LOGGER.info(f"compress [{stage}] {text} ({time.perf_counter() - self.began:.1f} s)")


def density_line(weights, plan):
    kept = sum(int(np.count_nonzero(weights.weight(n))) for n in plan.layers)
    total = sum(weights.weight(n).size for n in plan.layers)
    return f"{kept} of {total} weights kept ({100.0 * kept / max(1, total):.1f}%)"
