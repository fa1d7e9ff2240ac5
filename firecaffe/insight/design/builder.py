"""NetBuilder: writes a Caffe net's prototxt layer by layer; the engine measures it.

The builder only writes text. What it needs to know about the net (a blob's
shape while it writes, to decide the next layer; the parameter count,
multiply-adds and FLOPs of what it wrote) it reads from the engine: the text
written so far, its data layers swapped for an Input layer of one sample, is
built as a shapes-only ``Net`` (layers set up, weights neither filled nor laid
into arenas) and read with ``insight.analysis.analyze``. The layers own the
shape, parameter and FLOP rules; nothing here repeats them.
"""
from google.protobuf import text_format

from ...engine.net import Net
from ...errors import FirecaffeError
from ...proto import caffe_pb2
from ..analysis import analyze
from .prototxt import IMAGENET_MEAN, LEARN, XAVIER, Enum, comment_lines, constant, render

DATA_TYPES = ("Data", "HDF5Data")             # the layers that read data sets; the engine gets an Input
MULTIPLY_ADD_TYPES = ("Convolution", "InnerProduct")


def build_for_shapes(text, train, inputs, label=""):
    """A shapes-only Net of prototxt ``text`` in TRAIN (``train``) or TEST phase, its
    ``DATA_TYPES`` layers replaced by one Input layer of ``inputs`` ({top: shape})."""
    param = text_format.Parse(text, caffe_pb2.NetParameter())
    kept = [layer for layer in param.layer if layer.type not in DATA_TYPES]
    if len(kept) < len(param.layer):
        feed = caffe_pb2.LayerParameter(name="data", type="Input", top=list(inputs))
        for shape in inputs.values():
            feed.input_param.shape.add(dim=shape)
        del param.layer[:]
        param.layer.extend([feed] + kept)
    try:
        return Net(param, phase="TRAIN" if train else "TEST", shapes_only=True, source=f"<{param.name}>")
    except FirecaffeError as exc:
        raise type(exc)(f"{label or param.name}: {exc}") from None


def multiply_adds(net):
    """Multiply-adds per image of the convolution and inner-product layers: each
    weight is used once at every output position."""
    total = 0
    for layer, top in zip(net.layers, net.top_vecs):
        if layer.type in MULTIPLY_ADD_TYPES:
            positions = 1
            for size in top[0].shape[2:]:
                positions *= size
            total += layer.blobs[0].count * positions
    return total


class NetBuilder:
    """Prototxt for a train_val (``train=True``: data layers, fillers, losses) or a
    deploy net; ``shape(blob)``, ``params``, ``macs`` and ``flops`` come from the engine."""

    def __init__(self, name, train):
        self.name = name
        self.train = train
        self.chunks = [f'name: "{name}"']
        self.inputs = {}              # data blob -> shape of one sample, for the engine's Input layer
        self._measured = (None, None, None)      # (chunks measured, Net, analysis)

    def text(self):
        return "\n".join(self.chunks) + "\n"

    # --- what the engine says about the text so far ---------------------------------
    def net(self):
        """The shapes-only Net of what is written so far (built again after a new layer)."""
        if self._measured[0] != len(self.chunks):
            label = f"{self.name} ({'train_val' if self.train else 'deploy'})"
            net = build_for_shapes(self.text(), self.train, self.inputs, label)
            self._measured = (len(self.chunks), net, None)
        return self._measured[1]

    def analysis(self):
        """``insight.analysis.analyze`` of ``net()``."""
        net = self.net()
        if self._measured[2] is None:
            self._measured = (self._measured[0], net, analyze(net))
        return self._measured[2]

    def shape(self, blob):
        """Shape of ``blob`` for one sample (without the batch axis)."""
        return tuple(self.net().blobs[blob].shape[1:])

    @property
    def params(self):
        return self.analysis()["params"]

    @property
    def flops(self):
        """Forward FLOPs per image, as `firecaffe analyze` counts them."""
        return self.analysis()["flops_per_image"]

    @property
    def macs(self):
        return multiply_adds(self.net())

    # --- writing ---------------------------------------------------------------------
    def comment(self, text):
        self.chunks.append(comment_lines(text))

    def layer(self, name, type_, bottom=(), top=(), *items, phase=None):
        head = [("name", name), ("type", type_)]
        head += [("bottom", b) for b in ([bottom] if isinstance(bottom, str) else bottom)]
        head += [("top", t) for t in ([top] if isinstance(top, str) else top)]
        if phase:
            head.append(("include", [("phase", Enum(phase))]))
        self.chunks.append(render([("layer", head + list(items))]))

    # data ---------------------------------------------------------------------------
    def input(self, shape, top="data"):
        self.layer(top, "Input", (), top, ("input_param", [("shape", [("dim", d) for d in shape])]))

    def imagenet_data(self, crop, batch, test_batch=50, mean=IMAGENET_MEAN,
                      train_source="data/ilsvrc12_train_lmdb", val_source="data/ilsvrc12_val_lmdb"):
        self.comment(f"batch_size is per rank: {batch} images on each rank; the global batch is set\n"
                     "with `firecaffe train --global-batch N` (ranks = N / batch_size).")
        for phase, source, size, mirror in (("TRAIN", train_source, batch, True),
                                            ("TEST", val_source, test_batch, False)):
            transform = [("mirror", mirror), ("crop_size", crop)] + [("mean_value", m) for m in mean]
            self.layer("data", "Data", (), ("data", "label"), ("transform_param", transform),
                       ("data_param", [("source", source), ("batch_size", size), ("backend", Enum("LMDB"))]),
                       phase=phase)
        self.inputs.update(data=(1, 3, crop, crop), label=(1,))

    def hdf5_data(self, size, batch, test_batch, train_source, test_source):
        self.comment(f"batch_size is per rank: {batch} images on each rank; the global batch is set\n"
                     "with `firecaffe train --global-batch N`. The .txt sources list HDF5 files\n"
                     "holding `data` (N x 3 x H x W float32, mean-subtracted) and `label` (N).")
        for phase, source, n in (("TRAIN", train_source, batch), ("TEST", test_source, test_batch)):
            param = [("source", source), ("batch_size", n)] + ([("shuffle", True)] if phase == "TRAIN" else [])
            self.layer("data", "HDF5Data", (), ("data", "label"), ("hdf5_data_param", param), phase=phase)
        self.inputs.update(data=(1, 3, size, size), label=(1,))

    # layers with parameters ---------------------------------------------------------------
    def conv(self, name, bottom, num_output, kernel, stride=1, pad=0, group=1, bias=True,
             weight_filler=XAVIER, bias_filler=None, top=None):
        top = top or name
        conv = [("num_output", num_output)] + ([("bias_term", False)] if not bias else [])
        conv += [("pad", pad)] * bool(pad) + [("kernel_size", kernel)] + [("stride", stride)] * (stride > 1)
        conv += [("group", group)] * (group > 1)
        params = []
        if self.train:
            conv.append(("weight_filler", weight_filler))
            if bias:
                conv.append(("bias_filler", bias_filler or constant(0)))
            params = LEARN if bias else LEARN[:1]
        self.layer(name, "Convolution", bottom, top, *params, ("convolution_param", conv))
        return top

    def fc(self, name, bottom, num_output, weight_filler=XAVIER, bias_filler=None):
        ip = [("num_output", num_output)]
        if self.train:
            ip += [("weight_filler", weight_filler), ("bias_filler", bias_filler or constant(0))]
        self.layer(name, "InnerProduct", bottom, name, *(LEARN if self.train else ()), ("inner_product_param", ip))
        return name

    def batchnorm_scale(self, bn_name, scale_name, blob):
        """Caffe's BatchNorm (mean, variance, scale factor blobs; never learned) then Scale with bias."""
        frozen = [("param", [("lr_mult", 0), ("decay_mult", 0)])] * 3 if self.train else []
        bn = [] if self.train else [("batch_norm_param", [("use_global_stats", True)])]
        self.layer(bn_name, "BatchNorm", blob, blob, *frozen, *bn)
        self.layer(scale_name, "Scale", blob, blob, ("scale_param", [("bias_term", True)]))
        return blob

    # layers without ---------------------------------------------------------------------
    def relu(self, name, blob):
        self.layer(name, "ReLU", blob, blob)
        return blob

    def pool(self, name, bottom, method, kernel=None, stride=1, pad=0, global_pooling=False):
        p = [("pool", Enum(method))]
        if global_pooling:
            p.append(("global_pooling", True))
        else:
            p += [("kernel_size", kernel), ("stride", stride)] + [("pad", pad)] * bool(pad)
        self.layer(name, "Pooling", bottom, name, ("pooling_param", p))
        return name

    def lrn(self, name, bottom, local_size=5, alpha=0.0001, beta=0.75):
        self.layer(name, "LRN", bottom, name,
                   ("lrn_param", [("local_size", local_size), ("alpha", alpha), ("beta", beta)]))
        return name

    def dropout(self, name, blob, ratio):
        self.layer(name, "Dropout", blob, blob, ("dropout_param", [("dropout_ratio", ratio)]))
        return blob

    def concat(self, name, bottoms):
        self.layer(name, "Concat", bottoms, name)
        return name

    def eltwise_sum(self, name, bottoms):
        self.layer(name, "Eltwise", bottoms, name)          # operation defaults to SUM
        return name

    def classifier_head(self, score, loss_name="loss", loss_weight=None, accuracy_prefix=""):
        """train_val: SoftmaxWithLoss plus top-1/top-5 accuracy at TEST; deploy: Softmax "prob"."""
        if not self.train:
            self.layer("prob", "Softmax", score, "prob")
            return
        extra = [("loss_weight", loss_weight)] if loss_weight is not None else []
        self.layer(loss_name, "SoftmaxWithLoss", (score, "label"), loss_name, *extra)
        for k in (1, 5):
            name = f"{accuracy_prefix}accuracy_top{k}"
            self.layer(name, "Accuracy", (score, "label"), name,
                       *([("accuracy_param", [("top_k", k)])] if k > 1 else []), phase="TEST")
