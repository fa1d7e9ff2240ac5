"""The .fcz container: a net's weights after Deep Compression, in one self-checking file.

    magic      8 bytes  b"\\x89FCZ\\r\\n\\x1a\\n"
    version    uint16   1
    flags      uint16   0
    header     uint32   length of the header
    payload    uint64   length of the payload
    header     zlib-compressed JSON: the net's name and, per layer, its name, type and blobs
               (shape, coding, bits, index width, stream sizes: fcz/blobs.py)
    payload    the blobs' sections, in header order
    sha256     32 bytes over everything before it

Layers are stored by name with their blobs' shapes, so a .fcz is read without the net's
prototxt (``firecaffe decompress``) and loads into any net by layer name like a .caffemodel.
"""
import hashlib
import json
import struct
import zlib

from ..core.atomic import write_bytes
from ..errors import FirecaffeError
from . import blobs

MAGIC = b"\x89FCZ\r\n\x1a\n"
VERSION = 1
_FIXED = struct.Struct("<8sHHIQ")
_SHA = 32


class FczError(FirecaffeError):
    """A .fcz file that is not one, was cut short, damaged, or cannot be decoded."""


def encode(net_name, layers):
    """(file bytes, per-blob costs) for ``layers``: a list of (name, type, [(array, options)]), where
    options are ``blobs.encode``'s keyword arguments (bits, width, sparse_ok)."""
    header = {"net": net_name, "layers": []}
    chunks, costs = [], []
    for name, kind, arrays in layers:
        entry = {"name": name, "type": kind, "blobs": []}
        for k, (array, options) in enumerate(arrays):
            head, parts, cost = blobs.encode(array, **options)
            entry["blobs"].append(head)
            chunks += parts
            costs.append(dict(cost, layer=name, type=kind, blob=k))
        header["layers"].append(entry)
    text = zlib.compress(json.dumps(header, separators=(",", ":")).encode(), 9)
    payload = b"".join(chunks)
    body = _FIXED.pack(MAGIC, VERSION, 0, len(text), len(payload)) + text + payload
    return body + hashlib.sha256(body).digest(), costs


def write(path, net_name, layers):
    """Write ``layers`` (see ``encode``) to ``path`` atomically; return the per-blob costs."""
    data, costs = encode(net_name, layers)
    write_bytes(path, data)
    return costs


def read(path):
    """(net name, [(layer name, type, [float32 arrays])]) from the .fcz file at ``path``."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise FczError(f"{path}: cannot read ({exc.strerror})") from None
    return parse(data, str(path))


def parse(data, label="<bytes>"):
    header, payload = _check(data, label)
    buf = memoryview(payload)
    offset, layers = 0, []
    for entry in header.get("layers", []):
        arrays = []
        for k, head in enumerate(entry["blobs"]):
            try:
                array, offset = blobs.decode(head, buf, offset)
            except (ValueError, KeyError, TypeError) as exc:
                raise FczError(f"{label}: layer '{entry['name']}' blob {k} cannot be decoded: {exc}") from None
            arrays.append(array)
        layers.append((entry["name"], entry.get("type", ""), arrays))
    if offset != len(payload):
        raise FczError(f"{label}: {len(payload) - offset} payload bytes belong to no layer (damaged header?)")
    return header.get("net", ""), layers


def looks_like(path):
    """Whether ``path`` starts with the .fcz magic (a weights file of any name)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def _check(data, label):
    if len(data) < _FIXED.size or data[:len(MAGIC)] != MAGIC:
        if data[:len(MAGIC)] == MAGIC[:len(data)]:
            raise FczError(f"{label}: truncated: {len(data)} bytes, not even the .fcz header")
        raise FczError(f"{label}: not a .fcz file (it does not start with the .fcz magic)")
    _, version, _, head_len, pay_len = _FIXED.unpack_from(data)
    if version > VERSION:
        raise FczError(f"{label}: .fcz format version {version}; this firecaffe reads up to {VERSION}")
    expected = _FIXED.size + head_len + pay_len + _SHA
    if len(data) < expected:
        raise FczError(f"{label}: truncated: {len(data)} bytes of the {expected} its header announces")
    if len(data) > expected:
        raise FczError(f"{label}: {len(data) - expected} bytes past the end its header announces (damaged?)")
    if hashlib.sha256(data[:-_SHA]).digest() != data[-_SHA:]:
        raise FczError(f"{label}: corrupt: its SHA-256 checksum does not match its contents")
    try:
        header = json.loads(zlib.decompress(data[_FIXED.size:_FIXED.size + head_len]))
    except (zlib.error, ValueError) as exc:
        raise FczError(f"{label}: its header cannot be read ({exc})") from None
    start = _FIXED.size + head_len
    return header, data[start:start + pay_len]
