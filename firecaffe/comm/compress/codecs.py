"""The element-wise codecs (none, fp16, bf16, int8) and the links a strategy's messages go through.

On the wire every codec's message is a uint8 array: fp16 and bf16 two bytes a value
(bf16: float32's top half, rounded to nearest even, so float32's range); int8 one byte
a value and a float32 scale for each block of ``INT8_BLOCK`` values (max |x| / 127,
values rounded to nearest). A strategy never adds in 16 or 8 bits: each hop decodes
what came in, adds it to its float32 buffer, and encodes what it sends on, so only
the wire is narrower. fp16 shifts each block of ``INT8_BLOCK`` values by a power of two
(an int8 exponent a block) so that gradients far below its smallest normal keep their
precision and no finite value overflows; an infinite gradient stops the run naming the
parameter, its layer and the iteration (never a silent infinity). int8 has error
feedback: what each of this rank's encodes loses
is kept (the residual, one float32 per arena element) and added to the rank's next
gradient, so over the steps the sums sent track the true sums (Seide et al. 2014;
Karimireddy et al. 2019).
"""
import bisect

import numpy as np

from ..topology import chunk_slices
from .links import CodedLink, PlainLink

INT8_BLOCK = 256


class Codec:
    """The codec ``none``, and what every codec shares (see the package's docstring for the interface)."""

    elementwise = True
    lossless = True
    feedback = False
    bytes_per_value = 4.0
    range_text = advice = ""

    def __init__(self, spec, start=0):
        self.spec, self.name, self.start = spec, spec.name, start
        self.iteration = None
        self.params = []
        self._offsets = []
        self._residual = None

    # --- set-up and steps -----------------------------------------------------------
    def bind(self, params):
        """The arena's parameters (``[Param]``), for messages (and PowerSGD's matrices)."""
        self.params = sorted(params, key=lambda param: param.offset)
        self._offsets = [param.offset for param in self.params]
        if self.feedback and self.params:       # the whole arena's residual at once (not bucket by bucket)
            last = self.params[-1]
            self.residual(0, last.offset + int(np.prod(last.shape)))

    def begin(self, iteration):
        """The step whose gradients are reduced next."""
        self.iteration = iteration

    @property
    def active(self):
        """Whether this step is compressed (``--compress-start``: not before iteration ``start``)."""
        return self.iteration is None or self.iteration >= self.start

    def bucket_slices(self, size, elements):
        return chunk_slices(size, elements)

    def describe(self, element):
        """Who arena element ``element`` belongs to, for a message."""
        index = bisect.bisect_right(self._offsets, element) - 1
        if index < 0:
            return f"element {element} of the gradient"
        param = self.params[index]
        return f"parameter {param.name} (element {element - param.offset} of shape {tuple(param.shape)})"

    def when(self):
        return f"iteration {self.iteration}" if self.iteration is not None else "this reduction"

    # --- bytes ----------------------------------------------------------------------
    def wire_length(self, count):
        """Bytes of one message of ``count`` values."""
        return int(count * self.bytes_per_value)

    def wire_bytes(self, n_bytes, shapes=None):
        """Bytes this codec sends where the uncompressed strategy sends ``n_bytes`` of float32."""
        return self.wire_length(int(n_bytes) // 4)

    # --- state (error feedback) ---------------------------------------------------------
    def residual(self, at, size):
        """This rank's residual for arena elements ``at .. at + size`` (grown as needed)."""
        end = at + size
        if self._residual is None or self._residual.size < end:
            grown = np.zeros(end, np.float32)
            if self._residual is not None:
                grown[:self._residual.size] = self._residual
            self._residual = grown
        return self._residual[at:end]

    def state(self):
        """``{name: flat float32 array}``: what a snapshot keeps of this rank's codec."""
        return {"residual": self._residual} if self.feedback and self._residual is not None else {}

    def load_state(self, state):
        if self.feedback and "residual" in state:
            self._residual = np.array(state["residual"], np.float32)

    # --- one allreduce ------------------------------------------------------------------
    def link(self, buf, at=0):
        """The Link one allreduce of ``buf`` (arena elements ``at ..``) sends its messages through."""
        if self.lossless or not self.active:
            return PlainLink(buf)
        residual = None
        if self.feedback:
            residual = self.residual(at, buf.size)
            buf += residual
            residual[...] = 0.0
        return CodedLink(self, buf, at, residual)

    # --- one message ----------------------------------------------------------------------
    def encode(self, values):
        raise NotImplementedError

    def decode(self, wire, out):
        raise NotImplementedError

    def decode_add(self, wire, out):
        decoded = np.empty(out.size, np.float32)
        self.decode(wire, decoded)
        np.add(out, decoded, out=out)

    def overflow(self, wire):
        """Index of a value that did not fit, or None."""
        return None


class Float16(Codec):
    """IEEE half precision, each block of ``INT8_BLOCK`` values shifted by a power of two first (one
    int8 exponent per block, after the codes) so that the block's largest lands in [2^14, 2^15):
    a gradient's values, mostly far below fp16's smallest normal (6.1e-5), keep fp16's 11 bits
    instead of rounding to a few bits or to zero, and no finite value can overflow. The shift
    is exact both ways."""
    lossless = False
    bytes_per_value = 2.0
    range_text = "finite values"
    advice = "the gradient has diverged: lower the learning rate (or the loss_weight)"

    def wire_length(self, count):
        return 2 * count + -(-count // INT8_BLOCK)

    def encode(self, values):
        n = values.size
        wire = np.empty(self.wire_length(n), np.uint8)
        codes, shifts = wire[:2 * n].view(np.float16), wire[2 * n:].view(np.int8)
        for rows, (start, stop) in _blocks(n):
            block = np.asarray(values[start:stop], np.float32).reshape(-1, rows)
            exponent = np.frexp(np.abs(block).max(axis=1))[1]          # largest < 2^exponent (inf: 0)
            shift = np.clip(15 - exponent, -126, 126)          # both ways within float32's normals
            with np.errstate(over="ignore", invalid="ignore"):         # an infinity: overflow() names it
                # times a power of two: exact (what it would make subnormal in float32, half loses anyway)
                codes[start:stop] = (block * _powers_of_two(shift)[:, None]).reshape(-1)
            shifts[start // INT8_BLOCK:start // INT8_BLOCK + shift.size] = shift
        return wire

    def decode(self, wire, out):
        n = out.size
        codes, shifts = wire[:2 * n].view(np.float16), wire[2 * n:].view(np.int8)
        for rows, (start, stop) in _blocks(n):
            shift = shifts[start // INT8_BLOCK:start // INT8_BLOCK + (stop - start) // rows]
            target = out[start:stop].reshape(-1, rows)
            target[...] = codes[start:stop].reshape(-1, rows)
            target *= _powers_of_two(-shift.astype(np.int32))[:, None]

    def overflow(self, wire):
        n = len(wire) * INT8_BLOCK // (2 * INT8_BLOCK + 1)
        n += self.wire_length(n) < len(wire)                            # the short last block
        return _first(wire[:2 * n], 0x7C00)       # exponent all ones, mantissa 0: an infinity


class BFloat16(Codec):
    lossless = False
    bytes_per_value = 2.0
    range_text = "float32's largest, rounded"
    advice = "the gradient has diverged: lower the learning rate"

    def encode(self, values):
        bits = np.ascontiguousarray(values, np.float32).view(np.uint32)
        rounded = (bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))) >> np.uint32(16)
        return rounded.astype(np.uint16).view(np.uint8)

    def decode(self, wire, out):
        out[...] = (wire.view(np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)

    def overflow(self, wire):
        return _first(wire, 0x7F80)


class Int8(Codec):
    lossless = False
    feedback = True
    bytes_per_value = 1.0

    def wire_length(self, count):
        return 4 * -(-count // INT8_BLOCK) + count

    def encode(self, values):
        n = values.size
        blocks = -(-n // INT8_BLOCK)
        wire = np.empty(4 * blocks + n, np.uint8)
        scales, codes = wire[:4 * blocks].view(np.float32), wire[4 * blocks:].view(np.int8)
        for rows, (start, stop) in _blocks(n):        # the whole blocks as rows, then the short last one
            block = np.asarray(values[start:stop], np.float32).reshape(-1, rows)
            scale = np.abs(block).max(axis=1) / np.float32(127)
            # a block whose scale is below float32's smallest normal (every value under 1.5e-36) has
            # no finite inverse: it is sent as zeros, scale 0, and error feedback keeps its values
            scale[scale < np.finfo(np.float32).tiny] = 0
            inverse = np.divide(np.float32(1), scale, out=np.zeros_like(scale), where=scale > 0)
            scaled = block * inverse[:, None]          # within +-127 (+ rounding): rint fits int8
            np.rint(scaled, out=scaled)
            codes[start:stop] = scaled.reshape(-1)
            scales[start // INT8_BLOCK:start // INT8_BLOCK + scale.size] = scale
        return wire

    def decode(self, wire, out):
        n = out.size
        blocks = -(-n // INT8_BLOCK)
        scales, codes = wire[:4 * blocks].view(np.float32), wire[4 * blocks:4 * blocks + n].view(np.int8)
        for rows, (start, stop) in _blocks(n):
            scale = scales[start // INT8_BLOCK:start // INT8_BLOCK + (stop - start) // rows]
            np.multiply(codes[start:stop].reshape(-1, rows), scale[:, None], out=out[start:stop].reshape(-1, rows),
                        casting="unsafe")


def _powers_of_two(exponents):
    """float32 2^e for each integer e in [-126, 127], exactly (float32's normal range)."""
    return ((np.asarray(exponents, np.int32) + 127).astype(np.uint32) << np.uint32(23)).view(np.float32)


def _first(wire, infinity):
    """Index of the first 16-bit value of ``wire`` that is +-``infinity`` (its bits), or None."""
    hits = (wire.view(np.uint16) & np.uint16(0x7FFF)) == np.uint16(infinity)
    return int(np.argmax(hits)) if hits.any() else None


def _blocks(n):
    """``(values per row, (start, stop))`` of n values in INT8_BLOCK rows: the whole rows, then the rest."""
    whole = n - n % INT8_BLOCK
    parts = [(INT8_BLOCK, (0, whole))] if whole else []
    return parts + ([(n - whole, (whole, n))] if n > whole else [])


CODECS = {"none": Codec, "fp16": Float16, "bf16": BFloat16, "int8": Int8}
