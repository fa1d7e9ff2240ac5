"""A net's learnable blobs: collected once (shared ones once), then moved into two
flat arenas (data and diff) laid out in reverse layer order, so that backward
fills the diff arena from its start and a communicator can reduce a finished
prefix while backward goes on."""
from collections import OrderedDict

from ..core import backend
from ..core.blob import Blob, shape_str
from ..errors import PrototxtError


def collect_params(net, where):
    """Set net.params, learnable_params, params_lr, params_weight_decay and
    param_owner_layer; ``where(layer_param)`` gives 'FILE:LINE: ' for messages."""
    net.params = OrderedDict()
    owners = {}                   # param name -> (blob, layer name)
    net.learnable_params, net.params_lr, net.params_weight_decay = [], [], []
    net.param_owner_layer = []
    for index, (layer, lp) in enumerate(zip(net.layers, net.param.layer)):
        if not layer.blobs:
            continue
        frozen = set(layer.frozen_blobs)
        for k in range(len(layer.blobs)):
            spec = lp.param[k] if k < len(lp.param) else None
            lr = spec.lr_mult if spec is not None else 1.0
            decay = spec.decay_mult if spec is not None else 1.0
            if k in frozen:
                lr = decay = 0.0
            name = spec.name if spec is not None and spec.name else None
            if name and name in owners:
                owner, owner_layer = owners[name]
                mine = layer.blobs[k]
                if owner.shape != mine.shape and not (
                        spec.share_mode == spec.PERMISSIVE and owner.count == mine.count):
                    raise PrototxtError(
                        f"{where(lp)}layer '{layer.name}': shared param '{name}' has shape "
                        f"{shape_str(mine.shape)} but layer '{owner_layer}' owns it with shape {shape_str(owner.shape)}")
                layer.blobs[k] = owner if owner.shape == mine.shape else view_blob(owner, mine.shape)
                continue
            blob = layer.blobs[k]
            if name:
                owners[name] = (blob, layer.name)
            net.learnable_params.append(blob)
            net.params_lr.append(lr)
            net.params_weight_decay.append(decay)
            net.param_owner_layer.append(index)
        net.params[layer.name] = layer.blobs


def build_arenas(net):
    """Rebind every learnable blob's data and diff to views of two flat arrays."""
    order = sorted(range(len(net.learnable_params)), key=lambda i: (-net.param_owner_layer[i], i))
    total = sum(net.learnable_params[i].count for i in order)
    xp = backend.xp()
    net.param_arena = xp.zeros(total, dtype=net.dtype)
    net.diff_arena = xp.zeros(total, dtype=net.dtype)
    net.param_offsets = [0] * len(net.learnable_params)
    net.layer_arena_end = [0] * len(net.layers)   # diff filled up to here after layer i's backward
    offset = 0
    for i in order:
        blob = net.learnable_params[i]
        n = blob.count
        net.param_arena[offset:offset + n] = blob.weights.reshape(-1)
        blob.rebind(net.param_arena[offset:offset + n].reshape(blob.shape))
        blob.diff = net.diff_arena[offset:offset + n].reshape(blob.shape)
        net.param_offsets[i] = offset
        offset += n
        net.layer_arena_end[net.param_owner_layer[i]] = offset
    running = 0
    for i in reversed(range(len(net.layers))):
        running = max(running, net.layer_arena_end[i])
        net.layer_arena_end[i] = running
    for layer in net.layers:          # sharers' views follow the owner's new storage
        for k, blob in enumerate(layer.blobs):
            if hasattr(blob, "owner"):
                layer.blobs[k] = view_blob(blob.owner, blob.shape)


def view_blob(owner, shape):
    """A blob sharing ``owner``'s storage with another shape (PERMISSIVE sharing)."""
    blob = Blob.__new__(Blob)
    blob.name, blob.dtype, blob.owner, blob.learnable = owner.name, owner.dtype, owner, owner.learnable
    blob._data, blob.storage = None, owner.storage
    blob.rebind(owner.weights.reshape(shape))
    blob.diff = owner.diff.reshape(shape)
    return blob
