"""pycaffe's Net API, mixed into engine.net.Net: forward/backward by name with
keyword blobs, forward_all, set_input_arrays, weight sharing and files, and the
name tables (layer_dict, top_names, bottom_names, blob_loss_weights)."""
import itertools
from collections import OrderedDict

import numpy as np

from ..core import backend
from ..errors import FirecaffeError


class PycaffeNetAPI:
    # --- forward and backward by name ------------------------------------------
    def forward(self, blobs=None, start=None, end=None, **inputs):
        """Set the net inputs given as keywords, run layers ``start``..``end`` (names),
        return {name: data} of the net outputs (or of ``end``'s tops) and ``blobs``."""
        extra = list(blobs or ())
        first = self._layer_index(start, 0)
        if end is None:
            last, wanted = len(self.layers) - 1, self.outputs + extra
        else:
            last, wanted = self._layer_index(end), self.top_names[end] + extra
        for name, value in inputs.items():
            self._set_input(name, value)
        self.forward_range(first, last)
        return self._select(wanted, "data")

    def backward(self, diffs=None, start=None, end=None, **top_diffs):
        """Set the diffs of net outputs given as keywords, run backward from layer
        ``start`` down to ``end`` (names), return {name: diff} of the net inputs (or of
        ``end``'s bottoms) and ``diffs``."""
        extra = list(diffs or ())
        first = self._layer_index(start, len(self.layers) - 1)
        if end is None:
            last, wanted = 0, self.inputs + extra
        else:
            last, wanted = self._layer_index(end), self.bottom_names[end] + extra
        for name, value in top_diffs.items():
            if name not in self.outputs:
                raise FirecaffeError(f"net '{self.name}': '{name}' is not a net output, so backward() cannot "
                                     f"take its diff (outputs: {', '.join(self.outputs) or 'none'})")
            blob = self.blobs[name]
            value = backend.xp().asarray(value, dtype=self.dtype)
            if value.shape != blob.shape:
                raise FirecaffeError(f"net '{self.name}': diff for '{name}' has shape {value.shape}, "
                                     f"the blob has {blob.shape}")
            blob.diff[...] = value
        self.backward_range(first, last)
        return self._select(wanted, "diff")

    def forward_all(self, blobs=None, **inputs):
        """Forward any number of samples in batches of the net's batch size; return
        {name: array over all samples} for the outputs and ``blobs``."""
        wanted = list(dict.fromkeys(self.outputs + list(blobs or ())))
        collected = {name: [] for name in wanted}
        total = _sample_count(inputs)
        for batch in self._batches(inputs):
            outs = self.forward(blobs=blobs, **batch)
            for name in wanted:
                collected[name].append(backend.to_host(outs[name]).copy())
        return {name: _joined(parts, total) for name, parts in collected.items()}

    def forward_backward_all(self, blobs=None, diffs=None, **arrays):
        """forward_all and backward together: keywords naming inputs are fed forward,
        those naming outputs are their diffs; return (outputs, diffs) over all samples."""
        inputs = {k: v for k, v in arrays.items() if k in self.inputs}
        top_diffs = {k: v for k, v in arrays.items() if k not in self.inputs}
        wanted_out = list(dict.fromkeys(self.outputs + list(blobs or ())))
        wanted_diff = list(dict.fromkeys(self.inputs + list(diffs or ())))
        outs, grads = {n: [] for n in wanted_out}, {n: [] for n in wanted_diff}
        total = _sample_count(arrays)
        diff_batches = self._batches(top_diffs) if top_diffs else itertools.repeat({})
        for batch, diff_batch in zip(self._batches(inputs), diff_batches):
            forward = self.forward(blobs=blobs, **batch)
            backward = self.backward(diffs=diffs, **diff_batch)
            for name in wanted_out:
                outs[name].append(backend.to_host(forward[name]).copy())
            for name in wanted_diff:
                grads[name].append(backend.to_host(backward[name]).copy())
        return ({n: _joined(p, total) for n, p in outs.items()},
                {n: _joined(p, total) for n, p in grads.items()})

    def set_input_arrays(self, data, labels):
        """Give the MemoryData layer (the first layer, as in pycaffe) the arrays it serves;
        ``labels`` may be (N,), as pycaffe's wrapper allows."""
        labels = np.asarray(labels)
        if labels.ndim == 1:
            labels = labels.reshape(-1, 1, 1, 1)
        self._set_input_arrays(data, labels)

    def _set_input_arrays(self, data, labels):
        """pycaffe's raw call: ``data`` (N, C, H, W) and ``labels`` (N, 1, 1, 1)."""
        first = self.layers[0] if self.layers else None
        if first is None or first.type != "MemoryData":
            found = f"'{first.name}' ({first.type})" if first is not None else "none"
            raise FirecaffeError(f"net '{self.name}': set_input_arrays needs a MemoryData layer as the first "
                                 f"layer; the first layer is {found}")
        labels = np.asarray(labels)
        if labels.ndim != 4:
            raise FirecaffeError(f"net '{self.name}': _set_input_arrays takes labels of shape (N, 1, 1, 1), "
                                 f"got {labels.shape} (set_input_arrays also takes (N,))")
        first.set_input_arrays(np.asarray(data), labels)

    def _set_input(self, name, value):
        if name not in self.inputs:
            producer = next((f"layer '{lp.name}' ({lp.type})" for lp in self.param.layer if name in lp.top), None)
            what = f"it is produced by {producer}" if producer else "the net has no such blob"
            raise FirecaffeError(f"net '{self.name}': '{name}' is not a net input ({what}); "
                                 f"forward() takes inputs {', '.join(self.inputs) or '(none)'}")
        value = backend.xp().asarray(value, dtype=self.dtype)
        blob = self.blobs[name]
        if value.shape != blob.shape:        # pycaffe refuses; reshaping the net is friendlier
            blob.reshape(value.shape)
            self.reshape()
        blob.data[...] = value

    def _select(self, names, field):
        wanted = set(names)
        return {n: getattr(self.blobs[n], field) for n in self.blobs if n in wanted}

    def _batches(self, arrays):
        """Yield dicts of batch-sized slices of ``arrays``, the last one padded with zeros."""
        if not arrays:
            return
        size = self.blobs[self.inputs[0]].shape[0] if self.inputs else 1
        total = _sample_count(arrays)
        for begin in range(0, total, size):
            batch = {}
            for name, array in arrays.items():
                part = np.asarray(array[begin:begin + size])
                if len(part) < size:
                    pad = np.zeros((size - len(part),) + part.shape[1:], dtype=part.dtype)
                    part = np.concatenate([part, pad])
                batch[name] = part
            yield batch

    def _layer_index(self, name, default=None):
        if name is None:
            return default
        for i, layer in enumerate(self.layers):
            if layer.name == name:
                return i
        raise FirecaffeError(f"net '{self.name}' has no layer named '{name}'")

    # --- names -------------------------------------------------------------------
    @property
    def layer_dict(self):
        return OrderedDict((layer.name, layer) for layer in self.layers)

    @property
    def _layer_names(self):
        return [layer.name for layer in self.layers]

    @property
    def _blob_names(self):
        return list(self.blobs)

    @property
    def top_names(self):
        return OrderedDict((lp.name, list(lp.top)) for lp in self.param.layer)

    @property
    def bottom_names(self):
        return OrderedDict((lp.name, list(lp.bottom)) for lp in self.param.layer)

    @property
    def blob_loss_weights(self):
        weights = self.loss_weights_by_blob()
        return OrderedDict((name, weights.get(name, 0.0)) for name in self.blobs)

    # --- pycaffe's underscored names, on which python/caffe/pycaffe.py builds -------
    def _forward(self, start, end):
        """Run layers ``start``..``end`` (indices, both included); return the loss."""
        return self.forward_range(start, end)

    def _backward(self, start, end):
        """Backward from layer ``start`` down to ``end`` (indices, both included)."""
        self.backward_range(start, end)

    @property
    def _blobs(self):
        return list(self.blobs.values())

    @property
    def _inputs(self):
        return [self._blob_names.index(name) for name in self.inputs]

    @property
    def _outputs(self):
        return [self._blob_names.index(name) for name in self.outputs]

    @property
    def _blob_loss_weights(self):
        return list(self.blob_loss_weights.values())

    def _top_ids(self, i):
        return self._blob_ids(self.top_vecs[i])

    def _bottom_ids(self, i):
        return self._blob_ids(self.bottom_vecs[i])

    def _blob_ids(self, blobs):
        index = {id(blob): k for k, blob in enumerate(self.blobs.values())}
        return [index[id(blob)] for blob in blobs]

    # --- weights -------------------------------------------------------------------
    def copy_from(self, weights, require_all=False):
        """Load weights from a .caffemodel, a .caffemodel.h5 / .h5, or a NetParameter
        (``require_all``: every layer with weights must be in the file)."""
        from . import weights as weight_io
        weight_io.copy_into(self, weights, require_all)

    def share_with(self, other):
        """Read the weights of ``other``'s layers of the same name (no copies), as
        pycaffe's share_with (Caffe's ShareTrainedLayersWith)."""
        mine = self.layer_dict
        for layer in other.layers:
            target = mine.get(layer.name)
            if target is None or not layer.blobs:
                continue
            if len(target.blobs) != len(layer.blobs):
                raise FirecaffeError(f"layer '{layer.name}': {len(target.blobs)} param blob(s) here, "
                                     f"{len(layer.blobs)} in net '{other.name}'")
            for blob, source in zip(target.blobs, layer.blobs):
                if blob.shape != source.shape:
                    raise FirecaffeError(f"layer '{layer.name}': cannot share a param of shape {source.shape} "
                                         f"with one of shape {blob.shape}")
                blob.alias(source)
                self.ledger.charge(blob, blob.shape, f"weights of layer '{layer.name}' (shared)", copies=1)

    def to_proto(self, write_diff=False):
        from . import weights as weight_io
        return weight_io.net_to_proto(self, write_diff)

    def save(self, path):
        """Write the weights as a .caffemodel, or as HDF5 when ``path`` ends in .h5."""
        from . import weights as weight_io
        weight_io.save(self, path)

    def save_hdf5(self, path):
        from . import weights as weight_io
        weight_io.save_hdf5(self, path)

    def load_hdf5(self, path):
        from . import weights as weight_io
        weight_io.copy_into(self, path, hdf5=True)


def _sample_count(arrays):
    counts = {len(a) for a in arrays.values()}
    if len(counts) > 1:
        raise FirecaffeError(f"arrays of different lengths given: {sorted(counts)}")
    return counts.pop() if counts else 0


def _joined(parts, total):
    return np.concatenate(parts)[:total] if parts else np.zeros((0,))
