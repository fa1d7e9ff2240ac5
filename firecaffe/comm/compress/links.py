"""How one allreduce's messages travel: the buffer itself (``PlainLink``), or through a codec (``CodedLink``).

A strategy's ``_allreduce(buf, link)`` never touches the buffer for a message: it sends
``outgoing(sl)`` (a partial sum), receives into ``landing_length(count)`` elements of
``landing_dtype`` and ``add``s them in, receives a finished sum into ``result_target(sl)``
and ``settle``s it (then forwards what it received, as it came), and the rank that
completes a sum sends ``finish(sl)``, which also leaves in its own buffer exactly what the
others decode. Slices are of the link's buffer; ``part(sl)`` is the link of a part of it.
"""
import numpy as np

from ...errors import FirecaffeError


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
