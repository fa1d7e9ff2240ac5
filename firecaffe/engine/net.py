"""Net: a Caffe network built from a NetParameter, run forward and backward.

Built in one linear pass (Caffe's Net::Init): filter by phase/level/stage,
insert splits, create and set up layers in file order (adding the anonymous
tops a loss layer may leave out), decide which layers need backward, then move
every learnable blob into two flat arenas (arena.py). pycaffe's Python API
(forward(**inputs), backward(**diffs), forward_all, copy_from, ...) is mixed in
from pycaffe_net.py.

``shapes_only=True`` stops after the layers are set up: parameter blobs are
neither filled (layers read ``fill_blobs``) nor laid into arenas, so a large net
is read for shapes, parameter counts and FLOPs (``firecaffe analyze``,
``firecaffe design``) at no memory cost; it cannot train.
"""
from collections import OrderedDict

import numpy as np

from . import arena, fusion, gpu_errors, graph
from .graph import locate_layer
from ..core.blob import Blob, MemoryLedger, weights_changed
from ..core.hooks import Hooks
from ..errors import DataError, FirecaffeError, PrototxtError
from ..ops import LAYERS, create_layer
from ..proto import io
from .pycaffe_net import PycaffeNetAPI

AUTOMATIC = "(automatic)"          # Caffe's name for a top the net adds to a loss layer


class Net(PycaffeNetAPI):
    """``Net(model, phase)``, ``Net(model, weights, phase)`` or keywords, as in pycaffe;
    ``model`` is a prototxt path or a NetParameter, ``phase`` TRAIN/TEST (0/1 or strings)."""

    def __init__(self, model, *args, weights=None, phase=None, level=0, stages=(),
                 dtype=np.float32, shard=(0, 1), source=None, shapes_only=False, ledger=None):
        weights, phase = _weights_and_phase(args, weights, phase)
        self.phase = graph.phase_name(phase)
        self.shapes_only = shapes_only
        self.dtype = np.dtype(dtype)
        self.source = model if isinstance(model, str) else (source or "<NetParameter>")
        param = io.read_net(model) if isinstance(model, str) else model
        try:
            param = graph.inputs_to_layer(graph.filter_net(param, self.phase, level, stages or ()))
            param = graph.insert_splits(param, _loss_weight_of)
        except PrototxtError as exc:       # name the file and line of the layer at fault
            layer = getattr(exc, "layer", None)
            raise PrototxtError(f"{locate_layer(self.source, layer) if layer else ''}{exc}") from None
        self.name = param.name
        self.param = param
        self.hooks = Hooks("before_forward", "after_forward", "before_backward", "after_backward")
        self.layers, self.bottom_vecs, self.top_vecs = [], [], []
        self._reshaped_for = []        # bottom shapes at each layer's last reshape
        self.blobs = OrderedDict()
        self.ledger = ledger or MemoryLedger()   # the blobs' bytes (a solver's nets: together), checked
        self.inputs = []
        available = set()           # Caffe's available_blobs: tops no later layer consumed
        for layer_param in param.layer:
            self._append_layer(layer_param, shard, available)
        self.outputs = sorted(available)           # Caffe lists them from a std::set
        self._plan_backward()
        self.relu_fusion = fusion.plan(self)       # {conv index: ReLU slope}, engine/fusion.py
        self.norm_chain = fusion.plan_norm(self)      # {BatchNorm index: (Scale, ReLU) indices}, engine/fusion.py
        self.eltwise_relu = fusion.plan_eltwise(self)   # {Eltwise index: (ReLU index,)}, engine/fusion.py
        self.chains = {**self.norm_chain, **self.eltwise_relu}     # {leader: the layers it computes too}
        self.chain_tail = {chain[-1]: i for i, chain in self.chains.items()}
        self.bottom_relu = fusion.plan_bottom_relu(self)   # after the chains; {Concat/Pooling index: {bottom: ReLU index}}, engine/fusion.py
        arena.collect_params(self, self._where)
        if shapes_only:
            self.param_arena = self.diff_arena = None
        else:
            arena.build_arenas(self)
        if weights:
            self.copy_from(weights)

    # --- construction --------------------------------------------------------
    @property
    def param_arena(self):
        """The learnable blobs' flat data (engine/arena.py); its writers fetch it for each write,
        so a fetch counts as a write of the weights (core/blob.py, ``weights_epoch``)."""
        weights_changed()
        return self._param_arena

    @param_arena.setter
    def param_arena(self, value):
        weights_changed()
        self._param_arena = value

    def _where(self, layer_param):
        return locate_layer(self.source, layer_param.name)

    def _append_layer(self, layer_param, shard, available):
        try:
            layer = create_layer(layer_param, phase=self.phase, dtype=self.dtype)
        except PrototxtError as exc:
            raise PrototxtError(f"{self._where(layer_param)}{exc}") from None
        layer.fill_blobs = not self.shapes_only
        if layer.is_data:
            layer.shard = shard
        bottom = [self.blobs[name] for name in layer_param.bottom]
        available.difference_update(layer_param.bottom)
        top = []
        for name in layer_param.top:
            if name in self.blobs and name not in layer_param.bottom:
                raise PrototxtError(f"{self._where(layer_param)}layer '{layer.name}': top blob '{name}' "
                                    "is produced by an earlier layer too (only in-place tops may reuse a name)")
            if name not in self.blobs:
                self.blobs[name] = Blob((), self.dtype, name=name, ledger=self.ledger)
            top.append(self.blobs[name])
            available.add(name)
        if layer.auto_top_blobs():      # never an output; in blobs as pycaffe shows it (last one wins)
            needed = max(layer.min_num_top or 0, layer.exact_num_top or 0)
            for _ in range(needed - len(top)):
                top.append(Blob((), self.dtype, name=AUTOMATIC, ledger=self.ledger))
                self.blobs[AUTOMATIC] = top[-1]
        self.ledger.layer = layer.name
        try:
            layer.setup(bottom, top)
            self.ledger.charge_params(layer.name, layer.blobs)
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
        self._reshaped_for.append(_shapes(bottom))

    def _plan_backward(self):
        """Caffe's rules: a layer needs backward if a bottom or a learnable blob does,
        and only if its output reaches a loss; ``force_backward`` then turns every
        layer on (and every bottom its layer allows), loss or not."""
        needs = {}                      # id(blob) -> needs backward
        need, bneed = [], []
        for layer, lp, bottom, top in zip(self.layers, self.param.layer, self.bottom_vecs, self.top_vecs):
            lr = [spec.lr_mult for spec in lp.param] + [1.0] * (len(layer.blobs) - len(lp.param))
            param_need = any(lr[k] != 0 and k not in layer.frozen_blobs for k in range(len(layer.blobs)))
            flags = [needs.get(id(b), False) for b in bottom]
            layer_need = param_need or any(flags)
            if lp.propagate_down:
                if len(lp.propagate_down) != len(bottom):
                    raise PrototxtError(f"{self._where(lp)}layer '{lp.name}': {len(lp.propagate_down)} "
                                        f"propagate_down value(s) for {len(bottom)} bottom(s)")
                flags = [n and bool(p) for n, p in zip(flags, lp.propagate_down)]
            for b in top:
                needs[id(b)] = needs.get(id(b), False) or layer_need
            need.append(layer_need)
            bneed.append(flags)
        under_loss, skipped = set(), set()     # walking back from the losses
        for i in reversed(range(len(self.layers))):
            layer, top = self.layers[i], self.top_vecs[i]
            contributes = any(w for w in layer.loss_weights) or any(id(b) in under_loss for b in top)
            if not contributes or all(id(b) in skipped for b in top):
                need[i] = False
                bneed[i] = [False] * len(bneed[i])
            for k, b in enumerate(self.bottom_vecs[i]):
                if contributes:
                    under_loss.add(id(b))
                if not bneed[i][k]:
                    skipped.add(id(b))
        if self.param.force_backward:
            for i, layer in enumerate(self.layers):
                need[i] = True
                bneed[i] = [n or layer.allow_force_backward(k) for k, n in enumerate(bneed[i])]
        self.layer_need_backward, self.bottom_need_backward = need, bneed

    # --- running -------------------------------------------------------------
    def reshape(self):
        for i, (layer, bottom, top) in enumerate(zip(self.layers, self.bottom_vecs, self.top_vecs)):
            layer.reshape(bottom, top)
            self._reshaped_for[i] = _shapes(bottom)

    def forward_range(self, start=0, end=None):
        """Forward through layers ``start`` to ``end``; the sum of their losses. Each layer runs between
        the ``before_forward`` and ``after_forward`` hooks (called with its index). Without such hooks,
        a ReLU planned into its convolution, a BatchNorm chain and an Eltwise with its ReLU
        (engine/fusion.py) are computed in one go where all their layers run here."""
        end = len(self.layers) - 1 if end is None else end
        before, after = self.hooks["before_forward"], self.hooks["after_forward"]
        fuse = not before and not after
        loss, done = 0.0, ()
        for i in range(start, end + 1):
            for fn in before:
                fn(i)
            slope = self.relu_fusion.get(i) if fuse and i < end else None
            chain = self.chains.get(i) if fuse else None
            chain = chain if chain and chain[-1] <= end else None
            step = self.forward_layer(i, fused=i in done, relu_slope=slope, chain=chain)
            if step is None:
                done = chain or (i + 1,)
            loss += step or 0.0
            for fn in after:
                fn(i)
        return loss

    def backward_range(self, start=None, end=0, grad_ready=None):
        """Backward from layer ``start`` down to ``end``, each layer between the ``before_backward`` and
        ``after_backward`` hooks; ``grad_ready(n)`` is called once the first n elements of the diff
        arena hold finished gradients."""
        start = len(self.layers) - 1 if start is None else start
        before, after = self.hooks["before_backward"], self.hooks["after_backward"]
        fuse, done = not before and not after, set()
        for i in range(start, end - 1, -1):
            for fn in before:
                fn(i)
            if i in done:
                pass               # a layer whose backward a fused neighbour computed (engine/fusion.py)
            elif fuse and i in self.bottom_relu and self.layer_need_backward[i]:
                done |= self.backward_with_relus(i, end, self.bottom_need_backward)
            elif fuse and i in self.chain_tail:
                done |= self.backward_chain(i, end)
            else:
                self.backward_layer(i)
            for fn in after:
                fn(i)
            if grad_ready is not None:
                grad_ready(self.layer_arena_end[i])

    # pycaffe's layer hooks: ``net.before_forward(fn)`` calls ``fn(layer_index)`` before each layer's forward
    def before_forward(self, fn):
        self.hooks.add("before_forward", fn)

    def after_forward(self, fn):
        self.hooks.add("after_forward", fn)

    def before_backward(self, fn):
        self.hooks.add("before_backward", fn)

    def after_backward(self, fn):
        self.hooks.add("after_backward", fn)

    def _reshape_for_forward(self, i):
        """Caffe reshapes every layer before its forward; a layer's shapes change only when its
        bottoms' do (Filter's top follows the data); forward() reshapes layers that ask every time."""
        shapes = _shapes(self.bottom_vecs[i])
        if shapes != self._reshaped_for[i] and not self.layers[i].reshape_every_forward:
            self.layers[i].reshape(self.bottom_vecs[i], self.top_vecs[i])
            self._reshaped_for[i] = shapes

    def forward_layer(self, i, fused=False, relu_slope=None, chain=None):
        """Layer i's forward; its loss. ``fused``: layer i's forward was computed by a layer before it
        (only reshaped here); ``relu_slope``: layer i is a Convolution asked to apply that ReLU too,
        ``chain``: layer i is asked to compute the layers of these indices too (a BatchNorm chain, an
        Eltwise with its ReLU)
        (engine/fusion.py); where it did, None is returned."""
        layer, bottom, top = self.layers[i], self.bottom_vecs[i], self.top_vecs[i]
        try:
            self._reshape_for_forward(i)
            if fused:
                return 0.0
            if relu_slope is not None and layer.forward_relu(bottom, top, relu_slope):
                return None
            if chain is not None:
                for j in chain:
                    self._reshape_for_forward(j)
                if layer.forward_chain(bottom, top, *self._chain_layers(chain)):
                    return None
            return layer.forward_and_loss(bottom, top)
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
            if not any(t is blob for t in self.top_vecs[j]):
                continue
            layer = self.layers[j]
            if layer.is_data:
                return layer.describe_sample(sample)
            if layer.type == "Split" and self.bottom_vecs[j]:
                blob = self.bottom_vecs[j][0]
                continue
            if any(b is blob for b in self.bottom_vecs[j]):
                continue            # in place: keep looking for the producer
            return None
        return None

    def backward_layer(self, i, always=False):
        """Seed loss tops with their loss weights, then run layer i's backward if it
        needs one (``always``: in any case, as `caffe time` does)."""
        layer, top = self.layers[i], self.top_vecs[i]
        for blob, weight in zip(top, layer.loss_weights):
            if weight:
                blob.diff[...] = weight
        if always or self.layer_need_backward[i]:
            try:
                layer.backward(top, self.bottom_need_backward[i], self.bottom_vecs[i])
            except Exception as exc:
                gpu_errors.reraise_oom(exc, self, layer)
                raise

    def backward_with_relus(self, i, end, propagate):
        """Layer i's backward (a Concat, a max pooling) with the ReLU backwards planned into it
        (engine/fusion.py) that run in this pass (down to layer ``end``); the indices of those
        ReLUs, which are done."""
        masked, relus = fusion.bottom_relus(self, i, end, propagate)
        layer = self.layers[i]
        if masked and layer.backward_relu(self.top_vecs[i], propagate[i], self.bottom_vecs[i], masked):
            return relus
        self.backward_layer(i, always=True)
        return set()

    def _chain_layers(self, chain):
        """The layers of a chain's indices (after its leader)."""
        return [self.layers[j] for j in chain]

    def backward_chain(self, i, end=0, always=False):
        """Backward of layer i, the last of a chain (engine/fusion.py): the whole chain in one go
        where all of it runs in this pass (down to ``end``) and every layer of it propagates down
        to every bottom; the indices done. Otherwise layer i's own backward (``always`` as in
        backward_layer)."""
        leader = self.chain_tail[i]
        members = (leader, *self.chains[leader])
        if leader >= end and all(self.layer_need_backward[j] and all(self.bottom_need_backward[j])
                                 for j in members):
            top, bottom = self.top_vecs[leader], self.bottom_vecs[leader]
            if self.layers[leader].backward_chain(top, bottom, *self._chain_layers(self.chains[leader])):
                return set(members)
        self.backward_layer(i, always=always)
        return set()

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

    def __repr__(self):
        return f"<Net '{self.name}' {self.phase}: {len(self.layers)} layers, {sum(b.count for b in self.learnable_params)} params>"


def _is_phase(value):
    if isinstance(value, str):
        return value.upper() in graph.PHASES
    return not isinstance(value, bool) and value in graph.PHASES.values()


def _weights_and_phase(args, weights, phase):
    """pycaffe's two orders: Net(model, phase, weights=...) and Net(model, weights, phase)."""
    if len(args) > 2:
        raise TypeError(f"Net() takes a model and at most two more positional arguments, got {len(args) + 1}")
    if args and _is_phase(args[0]):
        if len(args) == 2:
            raise TypeError("Net(model, phase, ...): give weights as weights=..., or as Net(model, weights, phase)")
        phase = args[0] if phase is None else phase
    elif args:
        weights = args[0] if weights is None else weights
        if len(args) == 2:
            phase = args[1] if phase is None else phase
    return weights, ("TEST" if phase is None else phase)


def _loss_weight_of(layer_param, top_index):
    if layer_param.loss_weight:
        return layer_param.loss_weight[top_index] if top_index < len(layer_param.loss_weight) else 0.0
    cls = LAYERS.get(layer_param.type)
    return 1.0 if cls is not None and cls.is_loss and top_index == 0 else 0.0


def _shapes(blobs):
    return [blob.shape for blob in blobs]
