"""The SqueezeNet family from the metaparameters of the SqueezeNet paper
(Iandola et al. 2016, section 5)::

    e_i      = base_e + incr_e * floor(i / freq)     expand filters of Fire module i = 0, 1, ...
    e_i,3x3  = pct_3x3 * e_i                         the rest of e_i are 1x1 filters
    s_i      = SR * e_i                              squeeze (1x1) filters

The defaults reproduce SqueezeNet v1.0 exactly (1,248,424 parameters). Model
sizes are float32 bytes / 2**20 ("MB" below); the paper's figures are these
values rounded up to two significant digits (1,248,424 -> 4.76 -> "4.8MB").
"""
import functools
import math
import os
from dataclasses import dataclass, fields, replace

from ...errors import FirecaffeError
from .builder import NetBuilder
from .prototxt import MSRA, XAVIER, Enum, gaussian, solver_text


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
    filler: str = "xavier"        # the paper's (xavier, conv10 gaussian 0.01) or msra for every convolution

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
        if self.filler not in ("xavier", "msra"):
            raise FirecaffeError(f"filler must be xavier or msra, got {self.filler!r}")
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


def fire(b, name, bottom, squeeze, e1, e3, filler=XAVIER):
    """Fire module: 1x1 squeeze, then 1x1 and 3x3 expand side by side, concatenated."""
    s = b.relu(f"{name}/relu_squeeze1x1", b.conv(f"{name}/squeeze1x1", bottom, squeeze, 1, weight_filler=filler))
    outs = []
    if e1:
        outs.append(b.relu(f"{name}/relu_expand1x1", b.conv(f"{name}/expand1x1", s, e1, 1, weight_filler=filler)))
    if e3:
        outs.append(b.relu(f"{name}/relu_expand3x3", b.conv(f"{name}/expand3x3", s, e3, 3, pad=1,
                                                            weight_filler=filler)))
    return b.concat(f"{name}/concat", outs) if len(outs) > 1 else outs[0]


def build_squeezenet(spec, train, batch=32):
    """A NetBuilder holding the train_val (``train``) or deploy net of ``spec``."""
    spec.validate()
    b = NetBuilder(spec.name, train)
    _write_squeezenet(b, spec, bypassed_modules(spec) if spec.bypass else (), batch)
    return b


def _write_squeezenet(b, spec, bypass, batch):
    """Write the layers of ``spec`` into ``b`` with a bypass around the modules in
    ``bypass``; return [(module, bottom blob, top blob)] of its Fire modules."""
    size = spec.input_size
    if not b.train:
        b.input((1, 3, size, size))
    elif spec.dataset == "cifar10":
        b.hdf5_data(size, batch, 100, "data/cifar10_train_h5.txt", "data/cifar10_test_h5.txt")
    else:
        b.imagenet_data(size, batch)
    filters, kernel, stride, pad = spec.conv1
    filler = MSRA if spec.filler == "msra" else XAVIER
    x = b.relu("relu_conv1", b.conv("conv1", "data", filters, kernel, stride, pad, weight_filler=filler))
    x = b.pool("pool1", x, "MAX", 3, 2)
    modules = []
    for number, (name, s, e1, e3) in enumerate(spec.schedule(), start=2):
        y = fire(b, name, x, s, e1, e3, filler)
        modules.append((name, x, y))
        if name in bypass:
            y = b.eltwise_sum(f"{name}/bypass", (x, y))
        x = b.pool(f"pool{number}", y, "MAX", 3, 2) if number in spec.pool_after else y
    x = b.dropout(f"drop{spec.modules + 1}", x, 0.5)
    x = b.relu(f"relu_conv{spec.modules + 2}",
               b.conv(f"conv{spec.modules + 2}", x, spec.num_classes, 1,
                      weight_filler=MSRA if spec.filler == "msra" else gaussian(0.01)))
    x = b.pool(f"pool{spec.modules + 2}", x, "AVE", global_pooling=True)
    b.classifier_head(x)
    return modules


@functools.lru_cache(maxsize=64)
def _modules_keeping_their_shape(spec):
    b = NetBuilder(spec.name, train=False)
    modules = _write_squeezenet(b, spec, (), batch=1)
    return tuple(name for name, bottom, top in modules if b.shape(top) == b.shape(bottom))


def bypassed_modules(spec):
    """The Fire modules a simple bypass goes around: those whose output has their input's
    shape, as the engine builds the net without bypass (a bypass changes no shape)."""
    return _modules_keeping_their_shape(replace(spec, bypass=False, dataset="imagenet", name="SqueezeNet"))


# The recipe leaves solver_mode out: the machine (or --cpu/--gpu) decides, unless asked.
SQUEEZENET_SOLVER = [
    ("test_iter", 1000), ("test_interval", 1000), ("test_initialization", False),
    ("base_lr", 0.04), ("lr_policy", "poly"), ("power", 1.0), ("momentum", 0.9),
    ("weight_decay", 0.0002), ("max_iter", 170000), ("display", 40), ("average_loss", 40),
    ("snapshot", 5000), ("random_seed", 42),
]
SQUEEZENET_SOLVER_NOTE = (
    "SqueezeNet's training recipe (Iandola et al. 2016, and the authors' released solver):\n"
    "global batch 512, base_lr 0.04 decaying linearly (poly, power 1) to 0 over 170,000\n"
    "iterations (~68 epochs of ILSVRC-2012). batch_size in train_val is per rank (32), so run\n"
    "  mpirun -n 16 firecaffe train SOLVER --global-batch 512\n"
    "test_iter 1000 x batch 50 covers the 50,000 validation images.")


def paper_mb(params):
    """Float32 size in 2**20-byte MB, rounded up to two significant digits as the paper prints it."""
    mb = params * 4 / 2**20
    digits = 1 - int(math.floor(math.log10(mb)))
    return math.ceil(round(mb * 10**digits, 9)) / 10**digits


def describe(spec, deploy=None):
    """Parameters, size, multiply-adds and FLOPs per image of the deploy net of ``spec``,
    as the engine counts them (``deploy``: its NetBuilder, when already built)."""
    b = deploy or build_squeezenet(spec, train=False)
    return {"params": b.params, "mb": b.params * 4 / 2**20, "paper_mb": paper_mb(b.params),
            "macs": b.macs, "flops": b.flops, "schedule": spec.schedule()}


def squeezenet_files(spec, out_dir, solver_mode=None):
    """({file name: text}, describe()) of the train_val, deploy and solver of ``spec``
    to go into ``out_dir``; ``solver_mode`` ('CPU' or 'GPU') is written only when given.
    Both nets are built by the engine here, so a design that does not fit fails here."""
    header = (f"{spec.name}: generated by `firecaffe design squeezenet` from\n" +
              ", ".join(f"{f.name}={getattr(spec, f.name)}" for f in fields(spec)
                        if f.name != "name" and not (f.name == "filler" and spec.filler == "xavier")))
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    train, deploy = build_squeezenet(spec, True), build_squeezenet(spec, False)
    info = describe(spec, deploy)
    train.net()                                   # the train_val must build too
    texts = {"train_val.prototxt": comment + train.text(), "deploy.prototxt": comment + deploy.text()}
    recipe = SQUEEZENET_SOLVER + ([("solver_mode", Enum(solver_mode.upper()))] if solver_mode else [])
    recipe.append(("snapshot_prefix", os.path.join("snapshots", os.path.basename(os.path.normpath(out_dir)))))
    texts["solver.prototxt"] = solver_text(os.path.join(out_dir, "train_val.prototxt"), recipe,
                                           SQUEEZENET_SOLVER_NOTE)
    return texts, info


def write_files(out_dir, texts):
    os.makedirs(out_dir, exist_ok=True)
    for name, text in texts.items():
        with open(os.path.join(out_dir, name), "w") as f:
            f.write(text)


def write_squeezenet(spec, out_dir, solver_mode=None):
    """Write train_val, deploy and solver prototxt of ``spec`` into ``out_dir`` (nothing
    when a net does not build); return describe()."""
    texts, info = squeezenet_files(spec, out_dir, solver_mode)
    write_files(out_dir, texts)
    return info
