"""A .caffemodel's weights without protobuf objects: the file is read once into a bytearray and
each blob becomes a float32 NumPy view of its packed ``data`` bytes (writable, no copy).

For large nets (AlexNet: 244 MB) this holds the weights once, where parsing a NetParameter
holds the file, the message and then the arrays. Only what the weights need is walked:
NetParameter.name (1) and .layer (100); LayerParameter.name (1), .type (2), .blobs (7);
BlobProto.shape (7: BlobShape.dim, 1), the legacy num/channels/height/width (1-4), packed
data (5) or double_data (8). A file with V1 ``layers`` (2) or anything unexpected returns None,
and the caller parses it the usual way (proto/io.py, with the upgrade).
"""
import numpy as np


def _varint(buf, pos):
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf, start, end):
    """(field number, wire type, value or (start, end) of a length-delimited field)."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = (pos, pos + size), pos + size
        elif wire == 5:
            value, pos = (pos, pos + 4), pos + 4
        elif wire == 1:
            value, pos = (pos, pos + 8), pos + 8
        else:
            raise ValueError(f"wire type {wire}")
        if pos > end:
            raise ValueError("a field runs past its message")
        yield number, wire, value


def _blob(buf, start, end):
    dims, legacy, values = [], {}, None
    for number, wire, value in _fields(buf, start, end):
        if number == 7 and wire == 2:
            for n, w, v in _fields(buf, *value):
                if n == 1 and w == 2:
                    pos = v[0]
                    while pos < v[1]:
                        dim, pos = _varint(buf, pos)
                        dims.append(dim)
                elif n == 1:
                    dims.append(v)
        elif number in (1, 2, 3, 4) and wire == 0:
            legacy[number] = value
        elif number in (5, 8) and wire == 2 and value[1] > value[0]:
            kind = "<f4" if number == 5 else "<f8"
            count = (value[1] - value[0]) // np.dtype(kind).itemsize
            values = np.frombuffer(buf, dtype=kind, count=count, offset=value[0])
        elif number in (5, 8):
            return None                                    # unpacked floats: leave it to protobuf
    shape = tuple(legacy.get(k, 0) for k in (1, 2, 3, 4)) if legacy else tuple(dims)
    if values is None:
        values = np.zeros(0, dtype=np.float32)
    if values.dtype != np.float32:
        values = values.astype(np.float32)
    if values.size != int(np.prod(shape, dtype=np.int64)):
        return None
    return values.reshape(shape)


def read_weights(path):
    """(net name, [(layer name, type, [float32 arrays])]) for the layers with blobs, or None when the
    file needs protobuf's parser (V1 layers, unpacked fields, anything unexpected)."""
    import os
    buf = bytearray(os.path.getsize(path))            # read straight into it: no second copy
    with open(path, "rb") as f:
        if f.readinto(buf) != len(buf):
            return None
    name, layers = "", []
    try:
        for number, wire, value in _fields(buf, 0, len(buf)):
            if number == 1 and wire == 2:
                name = bytes(buf[value[0]:value[1]]).decode("utf-8", "replace")
            elif number == 2:
                return None                                # V1 layers: needs the upgrade
            elif number == 100 and wire == 2:
                layer = _layer(buf, *value)
                if layer is None:
                    return None
                if layer[2]:
                    layers.append(layer)
    except (ValueError, IndexError):
        return None
    return name, layers


def _layer(buf, start, end):
    name, kind, blobs = "", "", []
    for number, wire, value in _fields(buf, start, end):
        if wire != 2:
            continue
        if number == 1:
            name = bytes(buf[value[0]:value[1]]).decode("utf-8", "replace")
        elif number == 2:
            kind = bytes(buf[value[0]:value[1]]).decode("utf-8", "replace")
        elif number == 7:
            blob = _blob(buf, *value)
            if blob is None:
                return None
            blobs.append(blob)
    return name, kind, blobs
