"""Bring old Caffe net and solver definitions up to the current form.

Caffe's history left three spellings of a net:

- V0: ``layers { layer { type: "conv" kernelsize: 5 ... } bottom: ... }``,
  every setting flat in one message, zero padding as its own "padding" layer;
- V1: ``layers { type: CONVOLUTION blobs_lr: 1 convolution_param { ... } }``;
- current: ``layer { type: "Convolution" param { lr_mult: 1 } ... }``.

`upgrade_net` takes any of them to the current form, the way Caffe's own
upgrade does, and also moves the legacy preprocessing fields of data layers
into ``transform_param``, turns ``input_dim`` into ``input_shape`` and drops
the ``param`` blocks Caffe no longer accepts on BatchNorm. `upgrade_solver`
turns the ``solver_type`` enum into the ``type`` string. Both return new
messages and raise PrototxtError (without a file name; the caller adds it).
"""
from ..errors import PrototxtError
from . import caffe_pb2

V1 = caffe_pb2.V1LayerParameter

# V0 type strings and the V1 enum they became.
V0_TYPES = {
    "accuracy": V1.ACCURACY, "bnll": V1.BNLL, "concat": V1.CONCAT,
    "conv": V1.CONVOLUTION, "data": V1.DATA, "dropout": V1.DROPOUT,
    "euclidean_loss": V1.EUCLIDEAN_LOSS, "flatten": V1.FLATTEN,
    "hdf5_data": V1.HDF5_DATA, "hdf5_output": V1.HDF5_OUTPUT,
    "im2col": V1.IM2COL, "images": V1.IMAGE_DATA,
    "infogain_loss": V1.INFOGAIN_LOSS, "innerproduct": V1.INNER_PRODUCT,
    "lrn": V1.LRN, "multinomial_logistic_loss": V1.MULTINOMIAL_LOGISTIC_LOSS,
    "pool": V1.POOLING, "relu": V1.RELU, "sigmoid": V1.SIGMOID,
    "softmax": V1.SOFTMAX, "softmax_loss": V1.SOFTMAX_LOSS,
    "split": V1.SPLIT, "tanh": V1.TANH, "window_data": V1.WINDOW_DATA,
}

# V1 enum names and the type strings of the current form.
V1_TYPES = {
    "NONE": "", "ABSVAL": "AbsVal", "ACCURACY": "Accuracy",
    "ARGMAX": "ArgMax", "BNLL": "BNLL", "CONCAT": "Concat",
    "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DATA": "Data", "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss",
    "ELTWISE": "Eltwise", "EXP": "Exp", "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct",
    "LRN": "LRN", "MEMORY_DATA": "MemoryData",
    "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss", "MVN": "MVN",
    "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU",
    "SIGMOID": "Sigmoid", "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss",
    "SILENCE": "Silence", "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss",
    "SPLIT": "Split", "SLICE": "Slice", "TANH": "TanH",
    "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}

# V0 field -> {V0 layer type: (V1 sub-message, field)}; an empty sub-message
# name means the field sits on the V1 layer itself.
V0_FIELDS = {
    "num_output": {"conv": ("convolution_param", "num_output"),
                   "innerproduct": ("inner_product_param", "num_output")},
    "biasterm": {"conv": ("convolution_param", "bias_term"),
                 "innerproduct": ("inner_product_param", "bias_term")},
    "weight_filler": {"conv": ("convolution_param", "weight_filler"),
                      "innerproduct": ("inner_product_param", "weight_filler")},
    "bias_filler": {"conv": ("convolution_param", "bias_filler"),
                    "innerproduct": ("inner_product_param", "bias_filler")},
    "pad": {"conv": ("convolution_param", "pad"), "pool": ("pooling_param", "pad")},
    "kernelsize": {"conv": ("convolution_param", "kernel_size"),
                   "pool": ("pooling_param", "kernel_size")},
    "group": {"conv": ("convolution_param", "group")},
    "stride": {"conv": ("convolution_param", "stride"),
               "pool": ("pooling_param", "stride")},
    "pool": {"pool": ("pooling_param", "pool")},
    "dropout_ratio": {"dropout": ("dropout_param", "dropout_ratio")},
    "local_size": {"lrn": ("lrn_param", "local_size")},
    "alpha": {"lrn": ("lrn_param", "alpha")},
    "beta": {"lrn": ("lrn_param", "beta")},
    "k": {"lrn": ("lrn_param", "k")},
    "source": {"data": ("data_param", "source"),
               "hdf5_data": ("hdf5_data_param", "source"),
               "images": ("image_data_param", "source"),
               "window_data": ("window_data_param", "source"),
               "infogain_loss": ("infogain_loss_param", "source")},
    "batchsize": {"data": ("data_param", "batch_size"),
                  "hdf5_data": ("hdf5_data_param", "batch_size"),
                  "images": ("image_data_param", "batch_size"),
                  "window_data": ("window_data_param", "batch_size")},
    "rand_skip": {"data": ("data_param", "rand_skip"),
                  "images": ("image_data_param", "rand_skip")},
    "shuffle_images": {"images": ("image_data_param", "shuffle")},
    "new_height": {"images": ("image_data_param", "new_height")},
    "new_width": {"images": ("image_data_param", "new_width")},
    "concat_dim": {"concat": ("concat_param", "concat_dim")},
    "det_fg_threshold": {"window_data": ("window_data_param", "fg_threshold")},
    "det_bg_threshold": {"window_data": ("window_data_param", "bg_threshold")},
    "det_fg_fraction": {"window_data": ("window_data_param", "fg_fraction")},
    "det_context_pad": {"window_data": ("window_data_param", "context_pad")},
    "det_crop_mode": {"window_data": ("window_data_param", "crop_mode")},
    "hdf5_output_param": {"hdf5_output": ("", "hdf5_output_param")},
}
_DATA_TYPES = ("data", "images", "window_data")
for _v0, _field in (("scale", "scale"), ("meanfile", "mean_file"),
                    ("cropsize", "crop_size"), ("mirror", "mirror")):
    V0_FIELDS[_v0] = {t: ("transform_param", _field) for t in _DATA_TYPES}

# Data layers whose own parameter message still carries preprocessing fields.
DATA_PARAMS = {"Data": "data_param", "ImageData": "image_data_param",
               "WindowData": "window_data_param"}
TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")
# Fields the layer reads from its own message (Caffe's WindowData scales by window_data_param.scale):
# kept there in a net written in the current format. Caffe moves them only when upgrading V1 layers.
OWN_FIELDS = {"WindowData": ("scale",)}

SOLVER_TYPES = {
    caffe_pb2.SolverParameter.SGD: "SGD",
    caffe_pb2.SolverParameter.NESTEROV: "Nesterov",
    caffe_pb2.SolverParameter.ADAGRAD: "AdaGrad",
    caffe_pb2.SolverParameter.RMSPROP: "RMSProp",
    caffe_pb2.SolverParameter.ADADELTA: "AdaDelta",
    caffe_pb2.SolverParameter.ADAM: "Adam",
}


def upgrade_net(net):
    """Return a copy of `net` (a NetParameter) in the current form."""
    net = _copy(net)
    if net.layer and net.layers:
        raise PrototxtError("the net uses both 'layer' and the legacy 'layers'; "
                            "write every layer as 'layer { ... }'")
    if any(v1.HasField("layer") for v1 in net.layers):
        _v0_to_v1(net)
    from_v1 = bool(net.layers)
    if net.layers:
        _v1_to_current(net)
    for layer in net.layer:
        _move_transform_fields(layer, keep=() if from_v1 else OWN_FIELDS.get(layer.type, ()))
        if layer.type == "BatchNorm" and len(layer.param) == 3:
            del layer.param[:]  # Caffe now freezes BatchNorm statistics itself
    _input_dim_to_shape(net)
    return net


def upgrade_solver(solver):
    """Return a copy of `solver` with the ``solver_type`` enum turned into ``type``."""
    solver = _copy(solver)
    if solver.HasField("solver_type"):
        if solver.HasField("type"):
            raise PrototxtError("the solver sets both 'solver_type' and 'type'; keep only 'type'")
        solver.type = SOLVER_TYPES[solver.solver_type]
        solver.ClearField("solver_type")
    return solver


def _copy(message):
    out = type(message)()
    out.CopyFrom(message)
    return out


def _v0_to_v1(net):
    """Replace every V0 layer nested in ``layers`` by its V1 equivalent."""
    old = _fold_padding_layers(list(net.layers))
    del net.layers[:]
    for connection in old:
        net.layers.add().CopyFrom(_v0_layer_to_v1(connection))


def _fold_padding_layers(connections):
    """Drop V0 "padding" layers, giving their pad to the convolution they feed."""
    padding_by_top = {}
    kept = []
    for connection in connections:
        v0 = connection.layer
        if v0.type == "padding":
            if len(connection.bottom) != 1 or len(connection.top) != 1:
                raise PrototxtError(f"padding layer '{v0.name}' needs one bottom and one top")
            padding_by_top[connection.top[0]] = connection
            continue
        for i, bottom in enumerate(connection.bottom):
            padding = padding_by_top.get(bottom)
            if padding is None:
                continue
            if v0.type != "conv":
                raise PrototxtError(f"padding layer '{padding.layer.name}' feeds layer "
                                    f"'{v0.name}' of type '{v0.type}'; only conv can take it")
            connection.bottom[i] = padding.bottom[0]
            v0.pad = padding.layer.pad
        kept.append(connection)
    return kept


def _v0_layer_to_v1(connection):
    """One V0 layer (inside its V1 wrapper) as a V1LayerParameter."""
    v0 = connection.layer
    out = V1()
    out.bottom.extend(connection.bottom)
    out.top.extend(connection.top)
    if v0.HasField("name"):
        out.name = v0.name
    if v0.HasField("type"):
        if v0.type not in V0_TYPES:
            raise PrototxtError(f"layer '{v0.name}': unknown V0 layer type '{v0.type}'")
        out.type = V0_TYPES[v0.type]
    out.blobs.extend(v0.blobs)
    out.blobs_lr.extend(v0.blobs_lr)
    out.weight_decay.extend(v0.weight_decay)
    for field, value in v0.ListFields():
        if field.name in ("name", "type", "blobs", "blobs_lr", "weight_decay"):
            continue
        target = V0_FIELDS.get(field.name, {}).get(v0.type)
        if target is None:
            raise PrototxtError(f"layer '{v0.name}': V0 field '{field.name}' has no "
                                f"meaning for a '{v0.type}' layer")
        _set(getattr(out, target[0]) if target[0] else out, target[1], value)
    return out


def _set(message, name, value):
    """Assign `value` to field `name` of `message`, whatever its kind."""
    field = message.DESCRIPTOR.fields_by_name[name]
    if field.message_type is not None:
        getattr(message, name).CopyFrom(value)
    elif field.is_repeated:
        getattr(message, name).append(value)
    else:
        setattr(message, name, value)


def _v1_to_current(net):
    """Turn every V1 ``layers`` entry into a current ``layer``."""
    for v1 in net.layers:
        net.layer.add().CopyFrom(_v1_layer_to_current(v1))
    net.ClearField("layers")


def _v1_layer_to_current(v1):
    out = caffe_pb2.LayerParameter()
    out.name = v1.name
    out.bottom.extend(v1.bottom)
    out.top.extend(v1.top)
    if v1.HasField("type"):
        out.type = V1_TYPES[V1.LayerType.Name(v1.type)]
    out.include.extend(v1.include)
    out.exclude.extend(v1.exclude)
    out.blobs.extend(v1.blobs)
    out.loss_weight.extend(v1.loss_weight)
    specs = (("name", v1.param), ("share_mode", v1.blob_share_mode),
             ("lr_mult", v1.blobs_lr), ("decay_mult", v1.weight_decay))
    for attr, values in specs:
        for i, value in enumerate(values):
            while len(out.param) <= i:
                out.param.add()
            setattr(out.param[i], attr, value)
    for field, value in v1.ListFields():
        if field.name.endswith("_param"):
            getattr(out, field.name).CopyFrom(value)
    return out


def _move_transform_fields(layer, keep=()):
    """Move scale/mean_file/crop_size/mirror of a data layer into transform_param (but ``keep``)."""
    name = DATA_PARAMS.get(layer.type)
    if name is None or not layer.HasField(name):
        return
    param = getattr(layer, name)
    for field in TRANSFORM_FIELDS:
        if param.HasField(field) and field not in keep:
            setattr(layer.transform_param, field, getattr(param, field))
            param.ClearField(field)


def _input_dim_to_shape(net):
    """Turn the legacy four-numbers-per-input ``input_dim`` into ``input_shape``."""
    if not net.input_dim:
        return
    if net.input_shape:
        raise PrototxtError("the net sets both 'input_dim' and 'input_shape'; keep only 'input_shape'")
    if len(net.input_dim) != 4 * len(net.input):
        raise PrototxtError(f"'input_dim' needs 4 values per input: {len(net.input)} inputs, "
                            f"{len(net.input_dim)} values")
    dims = list(net.input_dim)
    for i in range(len(net.input)):
        net.input_shape.add().dim.extend(dims[4 * i:4 * i + 4])
    net.ClearField("input_dim")
