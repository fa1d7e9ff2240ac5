"""Compressed gradients: what ``--compress`` names, and the codecs the strategies send through.

Interface (the strategies, the cost model and the benchmark use only this):

``parse_compress(text) -> CompressSpec``
    ``none | fp16 | bf16 | int8 | powersgd[:RANK]`` (RANK a positive whole number, 4 by
    default); anything else raises one FirecaffeError line naming what works.
``make_codec(text_or_spec, start=0) -> Codec``
    A fresh codec for one rank (codecs with error feedback hold that rank's state).
    ``start``: ``--compress-start N``, the first N iterations go uncompressed.

A ``Codec`` has
    ``name`` (``"fp16"``, ``"powersgd:4"``), ``spec``, ``start``;
    ``elementwise``: True for none/fp16/bf16/int8 (each value is encoded on its own, so
        a strategy's every hop decodes, adds in float32 and encodes: ``link``), False for
        PowerSGD (it reduces whole matrices: ``reduce``);
    ``lossless``: True only for none; ``feedback``: error feedback (int8, powersgd);
    ``wire_bytes(n_bytes, shapes=None)``: the bytes this codec puts on a link where the
        uncompressed strategy puts ``n_bytes`` of float32 (PowerSGD: a function of the
        matrix shapes; ``shapes`` lists the shapes of the parameters that make up the
        n bytes, in arena order; without them the bytes are one square-ish matrix);
    ``begin(iteration)``: the step about to be reduced (``--compress-start``, and the
        iteration an overflow names); ``active``: whether that step is compressed;
    ``bind(params)``: the arena's parameters, a list of ``Param(name, offset, shape)``
        (layer names for messages, PowerSGD's matrices); checks them (a PowerSGD rank
        larger than a matrix's smaller side is refused, naming the layer);
    ``bucket_slices(size, elements)``: the buckets for ``--bucket-mb`` (PowerSGD keeps
        each matrix whole in one bucket);
    ``link(buf, at)`` (elementwise): the ``Link`` one allreduce of ``buf`` (elements
        ``at .. at + buf.size`` of the arena) sends through; error feedback adds the
        rank's residual in first and keeps what every encode of this rank loses;
    ``reduce(buf, at, allreduce, workers)`` (PowerSGD): sums ``buf`` across the workers
        with ``allreduce(float32 array)`` (the strategy's own, uncompressed) on its factors;
    ``state() -> {name: flat float32 array}`` and ``load_state(dict)``: the rank's error
        feedback residual and PowerSGD's Q, solver state (solvers/snapshot.py saves them).
    ``encode(values) -> uint8 array``, ``decode(wire, out)``, ``decode_add(wire, out)``,
        ``wire_length(count)`` (elementwise): one message's bytes.

A ``Link`` (links.py) is what the strategies call instead of touching the buffer: ``outgoing(sl)``
(what to send of ``buf[sl]``), ``landing(scratch, count)`` and ``add(sl, landing)`` (a partial sum
in), ``result_target(sl)`` and ``settle(sl, received)`` (a finished sum in, to forward as received),
``finish(sl)`` (the rank that completes a sum: what to send on; its own copy becomes what the others
decode), ``part(sl)``. The plain link (none) sends the buffer itself, so an uncompressed run does
exactly what it did before codecs existed.
"""
import re
from typing import NamedTuple, Optional

from ...errors import FirecaffeError

NAMES = ("none", "fp16", "bf16", "int8", "powersgd")
DEFAULT_POWERSGD_RANK = 4
CHOICES = "none, fp16, bf16, int8 or powersgd[:RANK] (RANK a positive whole number, e.g. powersgd:4)"


class CompressSpec(NamedTuple):
    kind: str                      # one of NAMES
    rank: Optional[int] = None     # PowerSGD's rank

    @property
    def name(self):
        return f"{self.kind}:{self.rank}" if self.kind == "powersgd" else self.kind


class Param(NamedTuple):
    """One learnable parameter in the flat arena: who it is (for messages), where, its shape."""

    name: str
    offset: int
    shape: tuple


def parse_compress(text):
    """The ``--compress`` value ``text`` as a CompressSpec; one FirecaffeError line for a bad one."""
    if isinstance(text, CompressSpec):
        return text
    value = str(text if text is not None else "none").strip().lower()
    match = re.fullmatch(r"([a-z0-9]+)(?::(.*))?", value)
    kind = match.group(1) if match else value
    if kind not in NAMES:
        raise FirecaffeError(f"--compress {text!r}: unknown codec; choose {CHOICES}")
    rank_text = match.group(2)
    if kind != "powersgd":
        if rank_text is not None:
            raise FirecaffeError(f"--compress {text!r}: only powersgd takes a rank; choose {CHOICES}")
        return CompressSpec(kind)
    if rank_text is None:
        return CompressSpec(kind, DEFAULT_POWERSGD_RANK)
    if not re.fullmatch(r"[+-]?\d+", rank_text.strip()) or int(rank_text) < 1:
        raise FirecaffeError(f"--compress {text!r}: PowerSGD's rank must be a whole number of at least 1; "
                             f"choose {CHOICES}")
    return CompressSpec(kind, int(rank_text))


def check_start(start):
    """``--compress-start``: a whole number of iterations, not negative."""
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise FirecaffeError(f"--compress-start {start!r}: give the number of uncompressed iterations "
                             "first, 0 or more")
    return start


def make_codec(spec="none", start=0):
    """A new codec (one rank's) for ``spec`` (text or CompressSpec), uncompressed before iteration ``start``."""
    from .codecs import CODECS
    spec = parse_compress(spec)
    check_start(start)
    if spec.kind == "powersgd":
        from .powersgd import PowerSGD
        return PowerSGD(spec, start)
    return CODECS[spec.kind](spec, start)


def square_layout(count):
    """A single matrix of ``count`` elements, about square (rows a power of two): a gradient without shapes."""
    rows = 1
    while rows * rows * 4 <= count and count % (rows * 2) == 0:
        rows *= 2
    return [Param("gradient", 0, (rows, count // rows))]


def layout_from_shapes(shapes, names=None):
    """``[Param]`` of parameters of ``shapes`` laid out one after the other from offset 0."""
    params, offset = [], 0
    for index, shape in enumerate(shapes):
        shape = tuple(int(d) for d in shape)
        count = 1
        for d in shape:
            count *= d
        params.append(Param(names[index] if names else f"param {index}", offset, shape))
        offset += count
    return params
