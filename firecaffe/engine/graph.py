"""NetParameter transforms done before a net is built, as Caffe does them:
phase/level/stage filtering, net-level inputs, and Split insertion for fan-out (each takes a
NetParameter and returns a new one); and where a layer stands in its prototxt file.
"""
import re
from collections import Counter

from ..errors import PrototxtError
from ..proto import caffe_pb2

PHASES = {"TRAIN": caffe_pb2.TRAIN, "TEST": caffe_pb2.TEST}


def phase_name(phase):
    """'TRAIN' or 'TEST' from a string or caffe_pb2.Phase value."""
    if isinstance(phase, str) and phase.upper() in PHASES:
        return phase.upper()
    for name, value in PHASES.items():
        if phase == value:
            return name
    raise PrototxtError(f"unknown phase {phase!r}: use 'TRAIN' or 'TEST'")


def layer_error(layer_name, message):
    """A PrototxtError about layer ``layer_name`` (the net adds the file and line)."""
    error = PrototxtError(message)
    error.layer = layer_name
    return error


def _rule_matches(rule, phase, level, stages):
    if rule.HasField("phase") and rule.phase != PHASES[phase]:
        return False
    if rule.HasField("min_level") and level < rule.min_level:
        return False
    if rule.HasField("max_level") and level > rule.max_level:
        return False
    if any(s not in stages for s in rule.stage):
        return False
    return not any(s in stages for s in rule.not_stage)


def filter_net(net_param, phase, level=0, stages=()):
    """Keep the layers whose include/exclude rules admit this phase, level and stages."""
    stages = set(stages) | set(net_param.state.stage)
    level = level or net_param.state.level
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net_param)
    del out.layer[:]
    for layer in net_param.layer:
        if layer.include and layer.exclude:
            raise layer_error(layer.name, f"layer '{layer.name}': specify include rules or exclude rules, not both")
        if layer.include:
            keep = any(_rule_matches(r, phase, level, stages) for r in layer.include)
        else:
            keep = not any(_rule_matches(r, phase, level, stages) for r in layer.exclude)
        if keep:
            out.layer.add().CopyFrom(layer)
    return out


def inputs_to_layer(net_param):
    """Turn net-level ``input`` + ``input_shape``/``input_dim`` into a leading Input layer."""
    if not net_param.input:
        return net_param
    names = list(net_param.input)
    if net_param.input_shape:
        shapes = [list(s.dim) for s in net_param.input_shape]
    else:
        dims = list(net_param.input_dim)
        shapes = [dims[4 * i:4 * i + 4] for i in range(len(dims) // 4)]
    if len(shapes) != len(names):
        raise PrototxtError(f"net '{net_param.name}': {len(names)} input(s) but {len(shapes)} input shape(s) "
                            "(give one input_shape, or four input_dim values, per input)")
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net_param)
    del out.input[:], out.input_shape[:], out.input_dim[:], out.layer[:]
    layer = out.layer.add(name="input", type="Input")
    for name, shape in zip(names, shapes):
        layer.top.append(name)
        layer.input_param.shape.add().dim.extend(shape)
    out.layer.extend(net_param.layer)
    return out


def split_blob_name(blob, layer, top_index, k):
    return f"{blob}_{layer}_{top_index}_split_{k}"


def insert_splits(net_param, loss_weight_of):
    """Insert a Split layer after every top that feeds more than one bottom.

    ``loss_weight_of(layer_param, top_index)`` gives a top's effective loss
    weight; a top with a loss weight that is also consumed gets a split whose
    first output carries the loss weight, so gradients from both add up.
    """
    last_producer = {}      # blob name -> (layer index, top index) of its latest version
    source = {}             # (layer index, bottom index) -> producer
    consumers = Counter()
    for i, layer in enumerate(net_param.layer):
        for j, name in enumerate(layer.bottom):
            if name not in last_producer:
                raise layer_error(layer.name,
                                  f"layer '{layer.name}' ({layer.type}): unknown bottom blob '{name}' "
                                  "(no earlier layer has it as a top)")
            source[i, j] = last_producer[name]
            consumers[last_producer[name]] += 1
        for j, name in enumerate(layer.top):
            last_producer[name] = (i, j)

    out = caffe_pb2.NetParameter()
    out.CopyFrom(net_param)
    del out.layer[:]
    used = Counter()
    for i, layer in enumerate(net_param.layer):
        new = out.layer.add()
        new.CopyFrom(layer)
        for j, name in enumerate(layer.bottom):
            src = source[i, j]
            if _needs_split(net_param, src, consumers, loss_weight_of):
                src_layer = net_param.layer[src[0]].name
                offset = 1 if loss_weight_of(net_param.layer[src[0]], src[1]) else 0
                new.bottom[j] = split_blob_name(name, src_layer, src[1], used[src] + offset)
                used[src] += 1
        for j, name in enumerate(layer.top):
            if not _needs_split(net_param, (i, j), consumers, loss_weight_of):
                continue
            weight = loss_weight_of(layer, j)
            count = consumers[i, j] + (1 if weight else 0)
            split = out.layer.add(name=f"{name}_{layer.name}_{j}_split", type="Split")
            split.bottom.append(name)
            split.top.extend(split_blob_name(name, layer.name, j, k) for k in range(count))
            if weight:
                _move_loss_weight(new, j, split, count, weight)
    return out


def _needs_split(net_param, top, consumers, loss_weight_of):
    count = consumers[top]
    return count > 1 or (count == 1 and loss_weight_of(net_param.layer[top[0]], top[1]) != 0)


def _move_loss_weight(layer, top_index, split, count, weight):
    weight_list = list(layer.loss_weight) or [0.0] * len(layer.top)
    weight_list[top_index] = 0.0
    del layer.loss_weight[:]
    layer.loss_weight.extend(weight_list)
    split.loss_weight.extend([weight] + [0.0] * (count - 1))


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
