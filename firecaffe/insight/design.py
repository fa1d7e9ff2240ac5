"""Write Caffe nets from design metaparameters: `firecaffe design squeezenet`.

``NetBuilder`` writes prototxt text layer by layer while it follows every
blob's shape, so it knows the parameter count and multiply-adds of what it
wrote without building a net. The SqueezeNet family is generated from the
metaparameters of the SqueezeNet paper (Iandola et al. 2016, section 5)::

    e_i      = base_e + incr_e * floor(i / freq)     expand filters of Fire module i = 0, 1, ...
    e_i,3x3  = pct_3x3 * e_i                         the rest of e_i are 1x1 filters
    s_i      = SR * e_i                              squeeze (1x1) filters

The defaults reproduce SqueezeNet v1.0 exactly (1,248,424 parameters). Model
sizes are float32 bytes / 2**20 ("MB" below); the paper's figures are these
values rounded up to two significant digits (1,248,424 -> 4.76 -> "4.8MB").
The zoo nets in nets/ are written by nets/_gen/zoo.py with the same builder.
"""
import itertools
import json
import math
import os
from dataclasses import dataclass, fields, replace

import click

from ..errors import FirecaffeError


# --- prototxt text --------------------------------------------------------------

class Enum(str):
    """A protobuf enum value (MAX, TRAIN, LMDB): written bare, not quoted."""


def _scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def render(items, indent=0):
    """Prototxt text of ``[(field, value), ...]``; a list value is a nested message,
    written on one line when it is short and flat."""
    pad, lines = "  " * indent, []
    for key, value in items:
        if not isinstance(value, list):
            lines.append(f"{pad}{key}: {_scalar(value)}")
            continue
        flat = " ".join(f"{k}: {_scalar(v)}" for k, v in value if not isinstance(v, list))
        if value and all(not isinstance(v, list) for _, v in value) and len(pad + key + flat) < 72:
            lines.append(f"{pad}{key} {{ {flat} }}")
        else:
            lines += [f"{pad}{key} {{", render(value, indent + 1), f"{pad}}}"] if value else [f"{pad}{key} {{}}"]
    return "\n".join(lines)


def gaussian(std):
    return [("type", "gaussian"), ("std", std)]


def constant(value=0.0):
    return [("type", "constant"), ("value", value)]


XAVIER = [("type", "xavier")]
MSRA = [("type", "msra")]
LEARN = [("param", [("lr_mult", 1), ("decay_mult", 1)]), ("param", [("lr_mult", 2), ("decay_mult", 0)])]
IMAGENET_MEAN = (104, 117, 123)           # BGR means of ILSVRC-2012, as Caffe's reference models


def _pool_out(size, kernel, stride, pad):
    """Caffe's pooling output size: rounds up, but the last window must start inside the input."""
    out = int(math.ceil((size + 2 * pad - kernel) / stride)) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


class NetBuilder:
    """Prototxt for a train_val (``train=True``: data layers, fillers, losses) or a
    deploy net, with blob shapes (C, H, W), parameter count and multiply-adds."""

    def __init__(self, name, train):
        self.train = train
        self.chunks = [f'name: "{name}"']
        self.shape, self.params, self.macs = {}, 0, 0

    def text(self):
        return "\n".join(self.chunks) + "\n"

    def comment(self, text):
        self.chunks.append("\n".join(f"# {line}" if line else "#" for line in text.splitlines()))

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
        self.shape[top] = tuple(shape[1:])

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
        self.shape["data"] = (3, crop, crop)

    def hdf5_data(self, size, batch, test_batch, train_source, test_source):
        self.comment(f"batch_size is per rank: {batch} images on each rank; the global batch is set\n"
                     "with `firecaffe train --global-batch N`. The .txt sources list HDF5 files\n"
                     "holding `data` (N x 3 x H x W float32, mean-subtracted) and `label` (N).")
        for phase, source, n in (("TRAIN", train_source, batch), ("TEST", test_source, test_batch)):
            param = [("source", source), ("batch_size", n)] + ([("shuffle", True)] if phase == "TRAIN" else [])
            self.layer("data", "HDF5Data", (), ("data", "label"), ("hdf5_data_param", param), phase=phase)
        self.shape["data"] = (3, size, size)

    # layers with parameters ---------------------------------------------------------------
    def conv(self, name, bottom, num_output, kernel, stride=1, pad=0, group=1, bias=True,
             weight_filler=XAVIER, bias_filler=None, top=None):
        top = top or name
        c, h, w = self.shape[bottom]
        if c % group or num_output % group:
            raise FirecaffeError(f"layer '{name}': {c} inputs and {num_output} outputs "
                                 f"do not split into {group} groups")
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
        oh, ow = (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1
        if oh < 1 or ow < 1:
            raise FirecaffeError(f"layer '{name}': a {kernel}x{kernel} kernel does not fit a {h}x{w} input")
        weights = num_output * (c // group) * kernel * kernel
        self.params += weights + (num_output if bias else 0)
        self.macs += weights * oh * ow
        self.shape[top] = (num_output, oh, ow)
        return top

    def fc(self, name, bottom, num_output, weight_filler=XAVIER, bias_filler=None):
        inputs = math.prod(self.shape[bottom])
        ip = [("num_output", num_output)]
        if self.train:
            ip += [("weight_filler", weight_filler), ("bias_filler", bias_filler or constant(0))]
        self.layer(name, "InnerProduct", bottom, name, *(LEARN if self.train else ()), ("inner_product_param", ip))
        self.params += inputs * num_output + num_output
        self.macs += inputs * num_output
        self.shape[name] = (num_output, 1, 1)
        return name

    def batchnorm_scale(self, bn_name, scale_name, blob):
        """Caffe's BatchNorm (mean, variance, scale factor blobs; never learned) then Scale with bias."""
        c = self.shape[blob][0]
        frozen = [("param", [("lr_mult", 0), ("decay_mult", 0)])] * 3 if self.train else []
        bn = [] if self.train else [("batch_norm_param", [("use_global_stats", True)])]
        self.layer(bn_name, "BatchNorm", blob, blob, *frozen, *bn)
        self.layer(scale_name, "Scale", blob, blob, ("scale_param", [("bias_term", True)]))
        self.params += 2 * c + 1 + 2 * c
        return blob

    # layers without ---------------------------------------------------------------------
    def relu(self, name, blob):
        self.layer(name, "ReLU", blob, blob)
        return blob

    def pool(self, name, bottom, method, kernel=None, stride=1, pad=0, global_pooling=False):
        c, h, w = self.shape[bottom]
        p = [("pool", Enum(method))]
        if global_pooling:
            p.append(("global_pooling", True))
            oh = ow = 1
        else:
            p += [("kernel_size", kernel), ("stride", stride)] + [("pad", pad)] * bool(pad)
            oh, ow = _pool_out(h, kernel, stride, pad), _pool_out(w, kernel, stride, pad)
            if oh < 1 or ow < 1:
                raise FirecaffeError(f"layer '{name}': a {kernel}x{kernel} pooling window does not fit "
                                     f"a {h}x{w} input; use a larger input or fewer pooling layers")
        self.layer(name, "Pooling", bottom, name, ("pooling_param", p))
        self.shape[name] = (c, oh, ow)
        return name

    def lrn(self, name, bottom, local_size=5, alpha=0.0001, beta=0.75):
        self.layer(name, "LRN", bottom, name,
                   ("lrn_param", [("local_size", local_size), ("alpha", alpha), ("beta", beta)]))
        self.shape[name] = self.shape[bottom]
        return name

    def dropout(self, name, blob, ratio):
        self.layer(name, "Dropout", blob, blob, ("dropout_param", [("dropout_ratio", ratio)]))
        return blob

    def concat(self, name, bottoms):
        shapes = [self.shape[b] for b in bottoms]
        self.layer(name, "Concat", bottoms, name)
        self.shape[name] = (sum(s[0] for s in shapes),) + shapes[0][1:]
        return name

    def eltwise_sum(self, name, bottoms):
        self.layer(name, "Eltwise", bottoms, name)          # operation defaults to SUM
        self.shape[name] = self.shape[bottoms[0]]
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


def solver_text(net, recipe, comment=""):
    """solver.prototxt text; ``recipe`` is a list of (field, value) after ``net``."""
    head = "".join(f"# {line}\n" if line else "#\n" for line in comment.splitlines())
    return head + render([("net", net)] + list(recipe)) + "\n"


def paper_mb(params):
    """Float32 size in 2**20-byte MB, rounded up to two significant digits as the paper prints it."""
    mb = params * 4 / 2**20
    digits = 1 - int(math.floor(math.log10(mb)))
    return math.ceil(round(mb * 10**digits, 9)) / 10**digits


# --- the SqueezeNet family --------------------------------------------------------

@dataclass(frozen=True)
class SqueezeNetSpec:
    """Metaparameters of a SqueezeNet-family net (defaults: SqueezeNet v1.0)."""
    base_e: int = 128             # expand filters of the first Fire module
    incr_e: int = 128             # expand filters added every `freq` modules
    freq: int = 2
    pct_3x3: float = 0.5          # share of the expand filters that are 3x3
    sr: float = 0.125             # squeeze ratio: squeeze filters / expand filters
    modules: int = 8              # Fire modules fire2 ... fire(modules+1)
    pool_after: tuple = (4, 8)    # Fire modules followed by 3x3/2 max pooling (conv1 always is)
    conv1: tuple = (96, 7, 2, 0)  # filters, kernel, stride, pad
    bypass: bool = False          # simple bypass (paper section 6) where a module keeps its width
    num_classes: int = 1000
    input_size: int = 227
    dataset: str = "imagenet"     # imagenet (LMDB Data layers) or cifar10 (HDF5Data layers)
    name: str = "SqueezeNet"

    def validate(self):
        if not 0 < self.sr <= 1:
            raise FirecaffeError(f"SR (squeeze ratio) must be in (0, 1], got {self.sr:g}: a squeeze layer "
                                 "has more than 0 and at most as many filters as the expand layer after it")
        if not 0 <= self.pct_3x3 <= 1:
            raise FirecaffeError(f"pct_3x3 must be in [0, 1], got {self.pct_3x3:g}: it is the share of "
                                 "each expand layer's filters that are 3x3")
        for field in ("base_e", "freq", "modules", "num_classes", "input_size"):
            if getattr(self, field) < 1:
                raise FirecaffeError(f"{field} must be at least 1, got {getattr(self, field)}")
        if self.incr_e < 0:
            raise FirecaffeError(f"incr_e must be 0 or more, got {self.incr_e}")
        last = self.modules + 1
        for n in self.pool_after:
            if not 2 <= n <= last:
                raise FirecaffeError(f"pooling after fire{n}: the Fire modules of this net are fire2 ... "
                                     f"fire{last} ({self.modules} modules); give positions from 2 to {last}")
        if self.dataset not in ("imagenet", "cifar10"):
            raise FirecaffeError(f"dataset must be 'imagenet' or 'cifar10', got {self.dataset!r}")

    def schedule(self):
        """[(module name, squeeze, expand 1x1, expand 3x3)] from the paper's formulas."""
        rows = []
        for i in range(self.modules):
            e = self.base_e + self.incr_e * (i // self.freq)
            e3 = int(round(self.pct_3x3 * e))
            rows.append((f"fire{i + 2}", max(1, int(round(self.sr * e))), e - e3, e3))
        return rows


SQUEEZENET_V1_0 = SqueezeNetSpec()
SQUEEZENET_V1_1 = SqueezeNetSpec(conv1=(64, 3, 2, 0), pool_after=(3, 5), name="SqueezeNet_v1.1")


def fire(b, name, bottom, squeeze, e1, e3):
    """Fire module: 1x1 squeeze, then 1x1 and 3x3 expand side by side, concatenated."""
    s = b.relu(f"{name}/relu_squeeze1x1", b.conv(f"{name}/squeeze1x1", bottom, squeeze, 1))
    outs = []
    if e1:
        outs.append(b.relu(f"{name}/relu_expand1x1", b.conv(f"{name}/expand1x1", s, e1, 1)))
    if e3:
        outs.append(b.relu(f"{name}/relu_expand3x3", b.conv(f"{name}/expand3x3", s, e3, 3, pad=1)))
    return b.concat(f"{name}/concat", outs) if len(outs) > 1 else outs[0]


def build_squeezenet(spec, train, batch=32):
    """A NetBuilder holding the train_val (``train``) or deploy net of ``spec``."""
    spec.validate()
    b = NetBuilder(spec.name, train)
    size = spec.input_size
    if not train:
        b.input((1, 3, size, size))
    elif spec.dataset == "cifar10":
        b.hdf5_data(size, batch, 100, "data/cifar10_train_h5.txt", "data/cifar10_test_h5.txt")
    else:
        b.imagenet_data(size, batch)
    filters, kernel, stride, pad = spec.conv1
    x = b.relu("relu_conv1", b.conv("conv1", "data", filters, kernel, stride, pad))
    x = b.pool("pool1", x, "MAX", 3, 2)
    for number, (name, s, e1, e3) in enumerate(spec.schedule(), start=2):
        y = fire(b, name, x, s, e1, e3)
        if spec.bypass and b.shape[y] == b.shape[x]:
            y = b.eltwise_sum(f"{name}/bypass", (x, y))
        x = b.pool(f"pool{number}", y, "MAX", 3, 2) if number in spec.pool_after else y
    x = b.dropout(f"drop{spec.modules + 1}", x, 0.5)
    x = b.relu(f"relu_conv{spec.modules + 2}",
               b.conv(f"conv{spec.modules + 2}", x, spec.num_classes, 1, weight_filler=gaussian(0.01)))
    x = b.pool(f"pool{spec.modules + 2}", x, "AVE", global_pooling=True)
    b.classifier_head(x)
    return b


SQUEEZENET_SOLVER = [
    ("test_iter", 1000), ("test_interval", 1000), ("test_initialization", False),
    ("base_lr", 0.04), ("lr_policy", "poly"), ("power", 1.0), ("momentum", 0.9),
    ("weight_decay", 0.0002), ("max_iter", 170000), ("display", 40), ("average_loss", 40),
    ("snapshot", 5000), ("random_seed", 42), ("solver_mode", Enum("GPU")),
]
SQUEEZENET_SOLVER_NOTE = (
    "SqueezeNet's training recipe (Iandola et al. 2016, and the authors' released solver):\n"
    "global batch 512, base_lr 0.04 decaying linearly (poly, power 1) to 0 over 170,000\n"
    "iterations (~68 epochs of ILSVRC-2012). batch_size in train_val is per rank (32), so run\n"
    "  mpirun -n 16 firecaffe train SOLVER --global-batch 512\n"
    "test_iter 1000 x batch 50 covers the 50,000 validation images.")


def describe(spec):
    """Parameters, size and multiply-adds of the deploy net of ``spec``."""
    b = build_squeezenet(spec, train=False)
    return {"params": b.params, "mb": b.params * 4 / 2**20, "paper_mb": paper_mb(b.params),
            "macs": b.macs, "schedule": spec.schedule()}


def write_squeezenet(spec, out_dir):
    """Write train_val, deploy and solver prototxt of ``spec`` into ``out_dir``; return describe()."""
    header = (f"{spec.name}: generated by `firecaffe design squeezenet` from\n" +
              ", ".join(f"{f.name}={getattr(spec, f.name)}" for f in fields(spec) if f.name != "name"))
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    texts = {"train_val.prototxt": comment + build_squeezenet(spec, True).text(),
             "deploy.prototxt": comment + build_squeezenet(spec, False).text()}   # raise before writing
    train_val = os.path.join(out_dir, "train_val.prototxt")
    texts["solver.prototxt"] = solver_text(train_val, SQUEEZENET_SOLVER + [
        ("snapshot_prefix", os.path.join("snapshots", os.path.basename(os.path.normpath(out_dir))))],
        SQUEEZENET_SOLVER_NOTE)
    os.makedirs(out_dir, exist_ok=True)
    for name, text in texts.items():
        with open(os.path.join(out_dir, name), "w") as f:
            f.write(text)
    return describe(spec)


# --- command line ---------------------------------------------------------------------

SWEEPABLE = {"sr": float, "pct_3x3": float, "base_e": int, "incr_e": int, "freq": int, "modules": int}


def parse_sweep(text):
    """'sr=0.125:1.0:0.125' (start:stop:step, stop included) or 'pct_3x3=0.01,0.5,0.99'."""
    name, _, values = text.partition("=")
    name = name.strip().lower().replace("-", "_")
    if name not in SWEEPABLE or not values:
        raise click.UsageError(f"--sweep {text!r}: write NAME=START:STOP:STEP or NAME=V1,V2,... "
                               f"with NAME one of {', '.join(SWEEPABLE)}")
    kind = SWEEPABLE[name]
    try:
        if ":" in values:
            start, stop, step = (float(v) for v in values.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            count = int(math.floor((stop - start) / step + 1e-9)) + 1
            out = [round(start + k * step, 10) for k in range(count)]
        else:
            out = [float(v) for v in values.split(",")]
    except ValueError:
        raise click.UsageError(f"--sweep {text!r}: values must be numbers, START <= STOP and STEP > 0") from None
    return name, [kind(v) if kind is float else int(round(v)) for v in out]


def _flops(deploy):
    """Forward FLOPs per image as `firecaffe analyze` counts them, or None without the engine."""
    try:
        from .analysis import analyze
        from ..engine.net import Net
    except ImportError:
        return None
    return analyze(Net(deploy, phase="TEST"))["flops_per_image"]


@click.group()
def design():
    """Write nets from design-space metaparameters."""


@design.command()
@click.option("--out", type=click.Path(file_okay=False), default="squeezenet_design", show_default=True,
              help="Folder for train_val/deploy/solver prototxt (one subfolder per point with --sweep).")
@click.option("--base-e", type=int, default=128, show_default=True, help="Expand filters of the first module.")
@click.option("--incr-e", type=int, default=128, show_default=True, help="Expand filters added every FREQ modules.")
@click.option("--freq", type=int, default=2, show_default=True)
@click.option("--pct-3x3", "pct_3x3", type=float, default=0.5, show_default=True,
              help="Share of expand filters that are 3x3.")
@click.option("--sr", type=float, default=0.125, show_default=True, help="Squeeze ratio.")
@click.option("--modules", type=int, default=8, show_default=True, help="Number of Fire modules.")
@click.option("--pool-after", default="4,8", show_default=True,
              help="Fire modules followed by max pooling (fire2 is the first).")
@click.option("--conv1", default="96,7,2,0", show_default=True, help="conv1 filters,kernel,stride,pad.")
@click.option("--bypass", is_flag=True, help="Simple bypass around modules that keep their width.")
@click.option("--classes", "num_classes", type=int, default=1000, show_default=True)
@click.option("--input-size", type=int, default=227, show_default=True)
@click.option("--dataset", type=click.Choice(["imagenet", "cifar10"]), default="imagenet", show_default=True)
@click.option("--sweep", multiple=True, metavar="NAME=START:STOP:STEP",
              help="Write a family over one metaparameter (repeat for a grid); NAME=V1,V2,... works too.")
def squeezenet(out, sweep, pool_after, conv1, **values):
    """Write a SqueezeNet-family net (defaults: SqueezeNet v1.0) and report its size and FLOPs."""
    try:
        values["pool_after"] = tuple(int(v) for v in pool_after.split(",") if v.strip())
        values["conv1"] = tuple(int(v) for v in conv1.split(","))
    except ValueError:
        raise click.UsageError("--pool-after and --conv1 take comma-separated integers") from None
    if len(values["conv1"]) != 4:
        raise click.UsageError("--conv1 takes four integers: filters,kernel,stride,pad")
    base = SqueezeNetSpec(**values)
    describe(base)                                   # refuse a net that cannot be built
    if not sweep:
        info = write_squeezenet(base, out)
        click.echo(f"{'module':8s} {'squeeze':>8s} {'1x1':>6s} {'3x3':>6s}")
        for name, s, e1, e3 in info["schedule"]:
            click.echo(f"{name:8s} {s:8d} {e1:6d} {e3:6d}")
        _report(info, _flops(os.path.join(out, "deploy.prototxt")), out)
        return
    axes = [parse_sweep(s) for s in sweep]
    points = [dict(zip([n for n, _ in axes], combo)) for combo in itertools.product(*[v for _, v in axes])]
    for point in points:
        describe(replace(base, **point))             # fail before writing anything
    header = "  ".join(f"{n:>8s}" for n, _ in axes)
    click.echo(f"{header}  {'params':>11s} {'MB':>7s} {'paper MB':>8s} {'GFLOPs':>7s}  folder")
    for point in points:
        folder = os.path.join(out, "_".join(f"{n}_{v:g}" for n, v in point.items()))
        spec = replace(base, name=f"SqueezeNet_{os.path.basename(folder)}", **point)
        info = write_squeezenet(spec, folder)
        flops = _flops(os.path.join(folder, "deploy.prototxt"))
        cells = "  ".join(f"{v:8g}" for v in point.values())
        click.echo(f"{cells}  {info['params']:11,d} {info['mb']:7.2f} {info['paper_mb']:8g} "
                   f"{(flops if flops is not None else 2 * info['macs']) / 1e9:7.3f}  {folder}")


def _report(info, flops, out):
    flops_text = f"{flops / 1e9:.3f} GFLOPs" if flops is not None else f"{2 * info['macs'] / 1e9:.3f} GFLOPs (2 x MACs)"
    click.echo(f"parameters: {info['params']:,d}\n"
               f"model size: {info['mb']:.2f} MB float32 (MB = 2**20 bytes; the paper would print "
               f"{info['paper_mb']:g}MB)\n"
               f"compute:    {info['macs'] / 1e9:.3f} G multiply-adds, {flops_text} per image\n"
               f"wrote {out}/train_val.prototxt, deploy.prototxt, solver.prototxt")
