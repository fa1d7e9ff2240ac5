"""Which layers are compressed, and how: ``--density 'conv*:0.35,fc*:0.1'``, ``--bits 'fc8:6'``,
``--quality 1.5``, checked against the net's layers before any work.

A value without a pattern applies to every compressed layer; patterns (shell-style, on layer
names) are applied in order, the last match winning. A pattern that matches no compressed
layer is an error (a typo would otherwise compress nothing). Compressed layers are those whose
first blob is a weight matrix: Convolution, Deconvolution and InnerProduct.
"""
import fnmatch
import math

from ..errors import FirecaffeError

CONV_TYPES = ("Convolution", "Deconvolution")
FC_TYPES = ("InnerProduct",)
DEFAULT_BITS = {"conv": 8, "fc": 5}          # the paper's widths (Han et al. 2016, section 5)


def family(kind):
    return "conv" if kind in CONV_TYPES else "fc" if kind in FC_TYPES else None


def parse(text, option, check, layers):
    """{layer: value} from 'pattern:value,...' over ``layers`` (names), each value through ``check``."""
    if text is None:
        return {}
    out = {}
    for item in filter(None, (part.strip() for part in str(text).split(","))):
        pattern, _, value = item.rpartition(":")
        pattern = pattern.strip() or "*"
        try:
            value = check(value.strip())
        except ValueError as exc:
            raise FirecaffeError(f"{option} '{item}': {exc}") from None
        matched = fnmatch.filter(layers, pattern)
        if not matched:
            raise FirecaffeError(f"{option} '{item}': the pattern '{pattern}' matches no compressible layer "
                                 f"(there are: {', '.join(layers[:12])}{', ...' if len(layers) > 12 else ''})")
        out.update((name, value) for name in matched)
    return out


def density(value):
    number = float(value)
    if not 0 < number <= 1 or math.isnan(number):
        raise ValueError(f"a density is the fraction of weights kept, in (0, 1]; got {value}")
    return number


def bits(value):
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"bits must be a whole number from 1 to 16; got {value}") from None
    if not 1 <= number <= 16:
        raise ValueError(f"bits must be from 1 to 16; got {value}")
    return number


def quality(value):
    number = float(value)
    if not number >= 0 or math.isinf(number):
        raise ValueError(f"a quality is a non-negative multiple of the weights' standard deviation; got {value}")
    return number


class Plan:
    """Per compressed layer: density or quality (pruning), bits (quantization), index width."""

    def __init__(self, kinds, density_text=None, quality_text=None, bits_text=None, index_text=None):
        self.kinds = {name: kind for name, kind in kinds.items() if family(kind)}
        names = list(self.kinds)
        if not names:
            raise FirecaffeError("the net has no Convolution, Deconvolution or InnerProduct layer to compress")
        self.density = parse(density_text, "--density", density, names)
        self.quality = parse(quality_text, "--quality", quality, names)
        both = sorted(set(self.density) & set(self.quality))
        if both:
            raise FirecaffeError(f"layer(s) {', '.join(both)} have both --density and --quality: give one")
        self.bits = {name: DEFAULT_BITS[family(kind)] for name, kind in self.kinds.items()}
        self.bits.update(parse(bits_text, "--bits", bits, names))
        self.index_bits = parse(index_text, "--index-bits", bits, names)

    @property
    def layers(self):
        return list(self.kinds)

    def prunes(self, name):
        return name in self.density or name in self.quality
