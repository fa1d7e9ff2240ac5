"""The element-wise codecs (none, fp16, bf16, int8) and the links a strategy's messages go through.

On the wire every codec's message is a uint8 array: fp16 and bf16 two bytes a value
(bf16: float32's top half, rounded to nearest even, so float32's range); int8 one byte
a value and a float32 scale for each block of ``INT8_BLOCK`` values (max |x| / 127,
values rounded to nearest). A strategy never adds in 16 or 8 bits: each hop decodes
what came in, adds it to its float32 buffer, and encodes what it sends on, so only
the wire is narrower. fp16 checks every message it encodes: a value beyond its range
(65504) stops the run naming the parameter, its layer and the iteration (never a
silent infinity). int8 has error feedback: what each of this rank's encodes loses
is kept (the residual, one float32 per arena element) and added to the rank's next
gradient, so over the steps the sums sent track the true sums (Seide et al. 2014;
Karimireddy et al. 2019).
"""
import bisect

import numpy as np

from ...errors import FirecaffeError
from ..topology import chunk_slices

INT8_BLOCK = 256
FP16_MAX = float(np.finfo(np.float16).max)


class Codec:
    """The codec ``none``, and what every codec shares (see the package's docstring for the interface)."""

    elementwise = True
    lossless = True
    feedback = False
    bytes_per_value = 4.0
    range_text = ""

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
    lossless = False
    bytes_per_value = 2.0
    range_text = f"+-{FP16_MAX:g}"

    def encode(self, values):
        wire = np.empty(2 * values.size, np.uint8)
        with np.errstate(over="ignore"):      # overflow() finds it and the link names it
            wire.view(np.float16)[...] = values
        return wire

    def decode(self, wire, out):
        out[...] = wire.view(np.float16)

    def decode_add(self, wire, out):
        np.add(out, wire.view(np.float16), out=out)

    def overflow(self, wire):
        bad = np.flatnonzero(np.isinf(wire.view(np.float16)))
        return int(bad[0]) if bad.size else None


class BFloat16(Codec):
    lossless = False
    bytes_per_value = 2.0
    range_text = "float32's largest, rounded"

    def encode(self, values):
        bits = np.ascontiguousarray(values, np.float32).view(np.uint32)
        rounded = (bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))) >> np.uint32(16)
        return rounded.astype(np.uint16).view(np.uint8)

    def decode(self, wire, out):
        out[...] = (wire.view(np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)

    def overflow(self, wire):
        bad = np.flatnonzero((wire.view(np.uint16) & np.uint16(0x7FFF)) == np.uint16(0x7F80))
        return int(bad[0]) if bad.size else None


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
        padded = np.zeros(blocks * INT8_BLOCK, np.float32)
        padded[:n] = values
        padded = padded.reshape(blocks, INT8_BLOCK)
        scale = (np.abs(padded).max(axis=1) / np.float32(127)).astype(np.float32)
        inverse = np.divide(np.float32(1), scale, out=np.zeros_like(scale), where=scale > 0)
        quantized = np.clip(np.rint(padded * inverse[:, None]), -127, 127).astype(np.int8)
        wire[:4 * blocks].view(np.float32)[...] = scale
        wire[4 * blocks:].view(np.int8)[...] = quantized.reshape(-1)[:n]
        return wire

    def decode(self, wire, out):
        n = out.size
        blocks = -(-n // INT8_BLOCK)
        scale = wire[:4 * blocks].view(np.float32)
        values = wire[4 * blocks:4 * blocks + n].view(np.int8).astype(np.float32)
        out[...] = values * np.repeat(scale, INT8_BLOCK)[:n]


CODECS = {"none": Codec, "fp16": Float16, "bf16": BFloat16, "int8": Int8}


class PlainLink:
    """An uncompressed allreduce's messages: the buffer itself, added as before codecs existed."""

    coded = False

    def __init__(self, buf):
        self.buf = buf
        self.landing_dtype = buf.dtype

    def part(self, sl):
        return PlainLink(self.buf[sl])

    def landing_length(self, count):
        return count

    def outgoing(self, sl):
        return self.buf[sl]

    def add(self, sl, landing):
        piece = self.buf[sl]
        np.add(piece, landing, out=piece)

    def result_target(self, sl):
        return self.buf[sl]

    def settle(self, sl, received):
        """``received`` (from ``result_target``) holds a finished sum: nothing to do, it is in place."""

    def finish(self, sl):
        return self.buf[sl]


class CodedLink:
    """One allreduce's messages through an element-wise codec: encode out, decode in, add in float32."""

    coded = True
    landing_dtype = np.dtype(np.uint8)

    def __init__(self, codec, buf, at, residual):
        self.codec, self.buf, self.at, self.residual = codec, buf, at, residual
        self.keep = []            # encoded messages stay alive until the allreduce is over

    def part(self, sl):
        start = sl.start or 0
        return CodedLink(self.codec, self.buf[sl], self.at + start,
                         None if self.residual is None else self.residual[sl])

    def landing_length(self, count):
        return self.codec.wire_length(count)

    def outgoing(self, sl):
        """``buf[sl]`` encoded; with error feedback what the encoding lost goes to the residual."""
        values = self.buf[sl]
        wire = self._encode(sl, values)
        if self.residual is not None:
            decoded = np.empty(values.size, np.float32)
            self.codec.decode(wire, decoded)
            self.residual[sl] += values - decoded
        return wire

    def add(self, sl, landing):
        self.codec.decode_add(landing, self.buf[sl])

    def result_target(self, sl):
        start, stop, _ = sl.indices(self.buf.size)
        wire = np.empty(self.codec.wire_length(stop - start), np.uint8)
        self.keep.append(wire)
        return wire

    def settle(self, sl, received):
        self.codec.decode(received, self.buf[sl])

    def finish(self, sl):
        """A finished sum leaves this rank: encode it, and hold what the others will decode."""
        values = self.buf[sl]
        wire = self._encode(sl, values)
        decoded = np.empty(values.size, np.float32)
        self.codec.decode(wire, decoded)
        if self.residual is not None:
            self.residual[sl] += values - decoded
        values[...] = decoded
        return wire

    def _encode(self, sl, values):
        wire = self.codec.encode(values)
        bad = self.codec.overflow(wire)
        if bad is not None:
            where = self.codec.describe(self.at + (sl.start or 0) + bad)
            raise FirecaffeError(
                f"{self.codec.when()}: the summed gradient of {where} is {float(values[bad]):.6g}, beyond "
                f"{self.codec.name}'s range ({self.codec.range_text}); use --compress bf16 (float32's range) or none, "
                "or a smaller loss_weight or learning rate")
        self.keep.append(wire)
        return wire
