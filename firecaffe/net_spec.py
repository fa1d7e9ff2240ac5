"""pycaffe's NetSpec: write a net in Python, get a NetParameter (prototxt).

    from firecaffe import layers as L, params as P, NetSpec
    n = NetSpec()
    n.data, n.label = L.HDF5Data(source="train.txt", batch_size=64, ntop=2)
    n.ip = L.InnerProduct(n.data, num_output=10, weight_filler=dict(type="xavier"))
    n.loss = L.SoftmaxWithLoss(n.ip, n.label)
    open("net.prototxt", "w").write(str(n.to_proto()))

``L.<Type>(*bottoms, **fields)`` makes a layer: a keyword goes into the type's own
``<type>_param`` message when that message has the field, else into the
LayerParameter (``param``, ``loss_weight``, ``include``, ...); dicts fill
sub-messages and lists fill repeated fields. ``ntop`` sets the number of tops
(0 returns the layer itself), ``in_place=True`` reuses the bottoms as tops.
Layers are named after the NetSpec attribute of their first top; unnamed tops
and layers get the type name and a counter (Convolution1, ...).
``P.<Type>.<ENUM>`` is an enum value, e.g. ``P.Pooling.MAX``.
"""
from collections import Counter, OrderedDict

from .proto import caffe_pb2


def param_name_dict():
    """{layer type: prefix of its ``<prefix>_param`` field}, e.g. 'Convolution': 'convolution'."""
    out = {}
    for field in caffe_pb2.LayerParameter.DESCRIPTOR.fields:
        message = field.message_type
        if field.name.endswith("_param") and message is not None and message.name.endswith("Parameter"):
            out[message.name[:-len("Parameter")]] = field.name[:-len("_param")]
    return out


def assign_proto(proto, name, value):
    """Set field ``name`` of ``proto`` from a Python value (dicts, lists, scalars)."""
    field = getattr(proto, name)
    if hasattr(field, "extend"):                      # repeated
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if isinstance(item, dict):
                entry = field.add()
                for key, sub in item.items():
                    assign_proto(entry, key, sub)
            else:
                field.append(item)
    elif isinstance(value, dict):
        for key, sub in value.items():
            assign_proto(field, key, sub)
    else:
        setattr(proto, name, value)


class Top:
    """One output of a layer function (``fn``'s ``n``-th top)."""

    def __init__(self, fn, n):
        self.fn, self.n = fn, n

    def to_proto(self):
        """A NetParameter of this top and everything it depends on."""
        return to_proto(self)

    def _to_proto(self, layers, names, autonames):
        return self.fn._to_proto(layers, names, autonames)


class Function:
    """A layer: its type, bottoms (Tops) and keyword parameters."""

    def __init__(self, type_name, inputs, params):
        self.type_name = type_name
        for index, bottom in enumerate(inputs):
            if not isinstance(bottom, Top):
                raise TypeError(f"{type_name} input {index} is not a Top (type is {type(bottom)})")
        self.inputs = inputs
        self.params = dict(params)
        self.ntop = self.params.pop("ntop", 1)
        self.in_place = self.params.pop("in_place", False)
        if self.in_place and self.ntop != len(inputs):
            raise ValueError(f"{type_name}: in_place needs as many tops as bottoms ({len(inputs)})")
        self.tops = tuple(Top(self, n) for n in range(self.ntop))

    def _top_name(self, top, names, autonames):
        if top not in names:
            autonames[top.fn.type_name] += 1
            names[top] = f"{top.fn.type_name}{autonames[top.fn.type_name]}"
        return names[top]

    def _name(self, names, autonames):
        if self not in names:
            if self.ntop > 0:
                names[self] = self._top_name(self.tops[0], names, autonames)
            else:
                autonames[self.type_name] += 1
                names[self] = f"{self.type_name}{autonames[self.type_name]}"
        return names[self]

    def _to_proto(self, layers, names, autonames):
        if self in layers:
            return
        bottoms = []
        for top in self.inputs:
            top._to_proto(layers, names, autonames)
            bottoms.append(layers[top.fn].top[top.n])
        layer = caffe_pb2.LayerParameter(type=self.type_name)
        layer.bottom.extend(bottoms)
        if self.in_place:
            layer.top.extend(layer.bottom)
        else:
            layer.top.extend(self._top_name(top, names, autonames) for top in self.tops)
        layer.name = self._name(names, autonames)
        prefix = _PARAM_NAMES.get(self.type_name)
        for key, value in self.params.items():
            if key.endswith("_param") or prefix is None:
                assign_proto(layer, key, value)
                continue
            sub = getattr(layer, f"{prefix}_param")
            target = sub if key in sub.DESCRIPTOR.fields_by_name else layer
            assign_proto(target, key, value)
        layers[self] = layer


class NetSpec:
    """Tops assigned as attributes (or items) become named blobs, in order."""

    def __init__(self):
        super().__setattr__("tops", OrderedDict())

    def __setattr__(self, name, value):
        self.tops[name] = value

    def __getattr__(self, name):
        try:
            return self.tops[name]
        except KeyError:
            raise AttributeError(name) from None

    __setitem__ = __setattr__

    def __getitem__(self, name):
        return self.tops[name]

    def __delitem__(self, name):
        del self.tops[name]

    def keys(self):
        return list(self.tops)

    def to_proto(self):
        names = {top: name for name, top in self.tops.items()}
        autonames, layers = Counter(), OrderedDict()
        for top in self.tops.values():
            top._to_proto(layers, names, autonames)
        net = caffe_pb2.NetParameter()
        net.layer.extend(layers.values())
        return net


def to_proto(*tops):
    """A NetParameter of ``tops`` (or top-less layers) and everything they depend on (auto-named)."""
    layers, autonames = OrderedDict(), Counter()
    for top in tops:
        top._to_proto(layers, {}, autonames)
    net = caffe_pb2.NetParameter()
    net.layer.extend(layers.values())
    return net


class Layers:
    """``L.Convolution(bottom, ...)``: any attribute is a layer type."""

    def __getattr__(self, type_name):
        if type_name.startswith("__"):
            raise AttributeError(type_name)

        def make(*bottoms, **params):
            fn = Function(type_name, bottoms, params)
            if fn.ntop == 0:
                return fn
            return fn.tops[0] if fn.ntop == 1 else fn.tops
        return make


class Parameters:
    """``P.Pooling.MAX``: enum values of ``<Type>Parameter`` messages."""

    def __getattr__(self, type_name):
        if type_name.startswith("__"):
            raise AttributeError(type_name)
        message = getattr(caffe_pb2, f"{type_name}Parameter")

        class Enums:
            def __getattr__(self, value_name):
                return getattr(message, value_name)
        return Enums()


_PARAM_NAMES = param_name_dict()
layers = Layers()
params = Parameters()
