"""Net: a Caffe network built from a NetParameter, run forward and backward.

Built in one linear pass (Caffe's Net::Init): filter by phase/level/stage,
insert splits, create and set up layers in file order, decide which layers need
backward, then move every learnable blob into two flat arenas (data and diff),
laid out in reverse layer order so that backward fills the diff arena from its
start and a communicator can reduce a finished prefix while backward goes on.
The Python API follows pycaffe: blobs, params, layers, inputs, outputs,
forward(**inputs), backward(), save(path).
"""
import re
from collections import OrderedDict

import numpy as np

from ..core import backend
from . import gpu_errors, graph
from ..core.blob import Blob, shape_str
from ..errors import DataError, FirecaffeError, PrototxtError
from ..ops import LAYERS, create_layer
from ..proto import io


class Net:
    def __init__(self, model, weights=None, phase="TEST", *, level=0, stages=(),
                 dtype=np.float32, shard=(0, 1), source=None, shapes_only=False):
        if isinstance(weights, (str, int)) and str(weights).upper() in ("TRAIN", "TEST", "0", "1"):
            weights, phase = None, weights            # pycaffe's Net(model, phase)
        self.phase = graph.phase_name(phase)
        self.shapes_only = shapes_only
        self.dtype = np.dtype(dtype)
        self.source = model if isinstance(model, str) else (source or "<NetParameter>")
        param = io.read_net(model) if isinstance(model, str) else model
        try:
            param = graph.inputs_to_layer(graph.filter_net(param, self.phase, level, stages))
            param = graph.insert_splits(param, _loss_weight_of)
        except PrototxtError as exc:       # name the file and line of the layer the message names
            named = re.match(r"layer '([^']*)'", str(exc))
            raise PrototxtError(f"{locate_layer(self.source, named[1]) if named else ''}{exc}") from None
        self.name = param.name
        self.param = param
        self.layers, self.bottom_vecs, self.top_vecs = [], [], []
        self.blobs = OrderedDict()
        self.inputs = []
        for layer_param in param.layer:
            self._append_layer(layer_param, shard)
        consumed = {id(b) for vec in self.bottom_vecs for b in vec}
        self.outputs = [n for n, b in self.blobs.items() if id(b) not in consumed]
        self._plan_backward()
        self._collect_params()
        if shapes_only:
            # stop once the layers are set up: parameter blobs stay unfilled zeros outside
            # any arena (lazily allocated: a 138M-parameter net costs no memory), read only
            # for shapes, parameter counts and FLOPs (analyze, design); not for training
            self.param_arena = self.diff_arena = None
        else:
            self._build_arenas()
        if weights:
            self.copy_from(weights)

    # --- construction --------------------------------------------------------
    def _where(self, layer_param):
        return locate_layer(self.source, layer_param.name)

    def _append_layer(self, layer_param, shard):
        try:
            layer = create_layer(layer_param, phase=self.phase, dtype=self.dtype)
        except PrototxtError as exc:
            raise PrototxtError(f"{self._where(layer_param)}{exc}") from None
        if getattr(layer, "is_data", False):
            layer.shard = shard
        layer.fill_blobs = not self.shapes_only
        bottom = [self.blobs[name] for name in layer_param.bottom]
        top = []
        for name in layer_param.top:
            if name in self.blobs and name not in layer_param.bottom:
                raise PrototxtError(f"{self._where(layer_param)}layer '{layer.name}': top blob '{name}' "
                                    "is produced by an earlier layer too (only in-place tops may reuse a name)")
            if name not in self.blobs:
                self.blobs[name] = Blob((), self.dtype, name=name)
            top.append(self.blobs[name])
        try:
            layer.setup(bottom, top)
        except FirecaffeError as exc:
            raise type(exc)(f"{self._where(layer_param)}{exc}") from None
        except Exception as exc:
            gpu_errors.reraise_oom(exc, self, layer)
            raise
        if layer_param.type == "Input":
            self.inputs.extend(layer_param.top)
        self.layers.append(layer)
        self.bottom_vecs.append(bottom)
        self.top_vecs.append(top)

    def _plan_backward(self):
        """Caffe's rules: a layer needs backward if a bottom or a learnable blob
        does, and only if its output reaches a loss."""
        needs = {}                      # id(blob) -> needs backward
        self.layer_need_backward, self.bottom_need_backward = [], []
        for layer, lp, bottom, top in zip(self.layers, self.param.layer, self.bottom_vecs, self.top_vecs):
            lr = [spec.lr_mult for spec in lp.param] + [1.0] * (len(layer.blobs) - len(lp.param))
            frozen = set(getattr(layer, "frozen_blobs", ()))
            param_need = any(lr[k] != 0 and k not in frozen for k in range(len(layer.blobs)))
            bneed = [needs.get(id(b), False) for b in bottom]
            if lp.propagate_down:
                if len(lp.propagate_down) != len(bottom):
                    raise PrototxtError(f"{self._where(lp)}layer '{lp.name}': {len(lp.propagate_down)} "
                                        f"propagate_down value(s) for {len(bottom)} bottom(s)")
                bneed = [n and bool(p) for n, p in zip(bneed, lp.propagate_down)]
            if self.param.force_backward:
                bneed = [layer.allow_force_backward(k) for k in range(len(bottom))]
            need = param_need or any(bneed)
            for b in top:
                needs[id(b)] = need
            self.layer_need_backward.append(need)
            self.bottom_need_backward.append(bneed)
        # prune what does not lead to a loss, walking back from the loss tops
        contributes = set()
        for i in reversed(range(len(self.layers))):
            layer, top = self.layers[i], self.top_vecs[i]
            reaches = any(w for w in layer.loss_weights) or any(id(b) in contributes for b in top)
            if not reaches:
                self.layer_need_backward[i] = False
                self.bottom_need_backward[i] = [False] * len(self.bottom_vecs[i])
            else:
                contributes.update(id(b) for b in self.bottom_vecs[i])

    def _collect_params(self):
        """Unique learnable blobs (shared ones once), with lr_mult/decay_mult."""
        self.params = OrderedDict()
        owners = {}                   # param name -> (blob, layer name, lr, decay)
        self.learnable_params, self.params_lr, self.params_weight_decay = [], [], []
        self.param_owner_layer = []
        for index, (layer, lp) in enumerate(zip(self.layers, self.param.layer)):
            if not layer.blobs:
                continue
            frozen = set(getattr(layer, "frozen_blobs", ()))
            for k in range(len(layer.blobs)):
                spec = lp.param[k] if k < len(lp.param) else None
                lr = spec.lr_mult if spec is not None else 1.0
                decay = spec.decay_mult if spec is not None else 1.0
                if k in frozen:
                    lr = decay = 0.0
                name = spec.name if spec is not None and spec.name else None
                if name and name in owners:
                    owner, owner_layer, olr, odecay = owners[name]
                    mine = layer.blobs[k]
                    if owner.shape != mine.shape and not (
                            spec.share_mode == spec.PERMISSIVE and owner.count == mine.count):
                        raise PrototxtError(
                            f"{self._where(lp)}layer '{layer.name}': shared param '{name}' has shape "
                            f"{shape_str(mine.shape)} but layer '{owner_layer}' owns it with shape {shape_str(owner.shape)}")
                    layer.blobs[k] = owner if owner.shape == mine.shape else _view_blob(owner, mine.shape)
                    continue
                blob = layer.blobs[k]
                if name:
                    owners[name] = (blob, layer.name, lr, decay)
                self.learnable_params.append(blob)
                self.params_lr.append(lr)
                self.params_weight_decay.append(decay)
                self.param_owner_layer.append(index)
            self.params[layer.name] = layer.blobs

    def _build_arenas(self):
        """Rebind every learnable blob's data and diff to views of two flat arrays."""
        order = sorted(range(len(self.learnable_params)),
                       key=lambda i: (-self.param_owner_layer[i], i))
        total = sum(self.learnable_params[i].count for i in order)
        xp = backend.xp()
        self.param_arena = xp.zeros(total, dtype=self.dtype)
        self.diff_arena = xp.zeros(total, dtype=self.dtype)
        self.param_offsets = [0] * len(self.learnable_params)
        self.layer_arena_end = [0] * len(self.layers)   # diff filled up to here after layer i's backward
        offset = 0
        for i in order:
            blob = self.learnable_params[i]
            n = blob.count
            self.param_arena[offset:offset + n] = blob.data.reshape(-1)
            blob.data = self.param_arena[offset:offset + n].reshape(blob.shape)
            blob.diff = self.diff_arena[offset:offset + n].reshape(blob.shape)
            self.param_offsets[i] = offset
            offset += n
            self.layer_arena_end[self.param_owner_layer[i]] = offset
        running = 0
        for i in reversed(range(len(self.layers))):
            running = max(running, self.layer_arena_end[i])
            self.layer_arena_end[i] = running
        for layer in self.layers:          # sharers' views follow the owner's new storage
            for k, blob in enumerate(layer.blobs):
                if hasattr(blob, "owner"):
                    layer.blobs[k] = _view_blob(blob.owner, blob.shape)

    # --- running -------------------------------------------------------------
    def reshape(self):
        for layer, bottom, top in zip(self.layers, self.bottom_vecs, self.top_vecs):
            layer.reshape(bottom, top)

    def forward_range(self, start=0, end=None):
        end = len(self.layers) - 1 if end is None else end
        loss = 0.0
        for i in range(start, end + 1):
            loss += self.forward_layer(i)
        return loss

    def backward_range(self, start=None, end=0, grad_ready=None):
        """Backward from layer ``start`` down to ``end``; ``grad_ready(n)`` is called
        once the first n elements of the diff arena hold finished gradients."""
        start = len(self.layers) - 1 if start is None else start
        for i in range(start, end - 1, -1):
            self.backward_layer(i)
            if grad_ready is not None:
                grad_ready(self.layer_arena_end[i])

    def forward_layer(self, i):
        try:
            return self.layers[i].forward(self.bottom_vecs[i], self.top_vecs[i])
        except DataError as exc:
            where = self.sample_origin(i, getattr(exc, "blob", None), getattr(exc, "sample", None))
            if where is None:
                raise
            raise DataError(f"{exc} (that sample comes from {where})") from None
        except Exception as exc:
            gpu_errors.reraise_oom(exc, self, self.layers[i])
            raise

    def sample_origin(self, i, blob, sample):
        """Where sample ``sample`` of ``blob`` (a bottom of layer i) was read from, as the
        data layer that produced it describes it (through Split copies); None if unknown."""
        if blob is None or sample is None:
            return None
        for j in range(i - 1, -1, -1):
            tops = self.top_vecs[j]
            if not any(t is blob for t in tops):
                continue
            layer = self.layers[j]
            if hasattr(layer, "describe_sample"):
                return layer.describe_sample(sample)
            if layer.type == "Split" and self.bottom_vecs[j]:
                blob = self.bottom_vecs[j][0]
                continue
            if any(b is blob for b in self.bottom_vecs[j]):
                continue            # in place: keep looking for the producer
            return None
        return None

    def backward_layer(self, i):
        """Seed loss tops with their loss weights, then run layer i's backward if needed."""
        layer, top = self.layers[i], self.top_vecs[i]
        for blob, weight in zip(top, layer.loss_weights):
            if weight:
                blob.diff[...] = weight
        if self.layer_need_backward[i]:
            try:
                layer.backward(top, self.bottom_need_backward[i], self.bottom_vecs[i])
            except Exception as exc:
                gpu_errors.reraise_oom(exc, self, layer)
                raise

    def forward(self, blobs=None, start=None, end=None, **inputs):
        """pycaffe's forward: set input blobs from keyword arrays, run, return outputs."""
        for name, value in inputs.items():
            if name not in self.blobs:
                raise FirecaffeError(f"net '{self.name}' has no blob named '{name}'")
            value = backend.xp().asarray(value, dtype=self.dtype)
            if value.shape != self.blobs[name].shape:
                self.blobs[name].reshape(value.shape)
                self.reshape()
            self.blobs[name].data[...] = value
        self.forward_range(self._layer_index(start, 0), self._layer_index(end, len(self.layers) - 1))
        names = set(self.outputs) | set(blobs or ())
        return {n: self.blobs[n].data for n in self.blobs if n in names}

    def backward(self, diffs=None, start=None, end=None, **top_diffs):
        for name, value in top_diffs.items():
            self.blobs[name].diff[...] = value
        self.backward_range(self._layer_index(start, len(self.layers) - 1), self._layer_index(end, 0))
        names = set(self.inputs) | set(diffs or ())
        return {n: self.blobs[n].diff for n in self.blobs if n in names}

    def forward_backward(self, grad_ready=None):
        loss = self.forward_range()
        self.backward_range(grad_ready=grad_ready)
        return loss

    def loss_weights_by_blob(self):
        """{blob name: loss weight} for the tops that carry a loss weight."""
        return {blob.name: weight for layer, top in zip(self.layers, self.top_vecs)
                for blob, weight in zip(top, layer.loss_weights) if weight}

    def clear_param_diffs(self):
        self.diff_arena[...] = 0

    def _layer_index(self, name, default):
        if name is None:
            return default
        for i, layer in enumerate(self.layers):
            if layer.name == name:
                return i
        raise FirecaffeError(f"net '{self.name}' has no layer named '{name}'")

    # --- pycaffe conveniences ------------------------------------------------
    @property
    def layer_dict(self):
        return OrderedDict((layer.name, layer) for layer in self.layers)

    @property
    def _layer_names(self):
        return [layer.name for layer in self.layers]

    @property
    def top_names(self):
        return OrderedDict((lp.name, list(lp.top)) for lp in self.param.layer)

    @property
    def bottom_names(self):
        return OrderedDict((lp.name, list(lp.bottom)) for lp in self.param.layer)

    # --- weights -------------------------------------------------------------
    def copy_from(self, weights, require_all=False):
        """Load weights from a .caffemodel, a .caffemodel.h5 / .h5, or a NetParameter
        (``require_all``: every layer with weights must be in the file)."""
        from . import weights as weight_io
        weight_io.copy_into(self, weights, require_all)

    def to_proto(self, write_diff=False):
        from . import weights as weight_io
        return weight_io.net_to_proto(self, write_diff)

    def save(self, path):
        """Write the weights as a .caffemodel, or as HDF5 when ``path`` ends in .h5."""
        from . import weights as weight_io
        weight_io.save(self, path)

    def __repr__(self):
        return f"<Net '{self.name}' {self.phase}: {len(self.layers)} layers, {sum(b.count for b in self.learnable_params)} params>"


def locate_layer(path, layer_name):
    """'FILE:LINE: ' of the layer named ``layer_name`` in a prototxt file, or ''."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except (OSError, TypeError, UnicodeDecodeError):
        return ""
    needle = re.compile(r'\bname\s*:\s*["\']' + re.escape(layer_name) + r'["\']')
    for number, line in enumerate(lines, 1):
        if needle.search(line):
            return f"{path}:{number}: "
    return f"{path}: "


def _view_blob(owner, shape):
    """A blob sharing ``owner``'s storage with another shape (PERMISSIVE sharing)."""
    blob = Blob.__new__(Blob)
    blob.name, blob.dtype, blob.owner = owner.name, owner.dtype, owner
    blob.data, blob.diff = owner.data.reshape(shape), owner.diff.reshape(shape)
    return blob


def _loss_weight_of(layer_param, top_index):
    if layer_param.loss_weight:
        return layer_param.loss_weight[top_index] if top_index < len(layer_param.loss_weight) else 0.0
    cls = LAYERS.get(layer_param.type)
    return 1.0 if cls is not None and cls.is_loss and top_index == 0 else 0.0
