"""Read and write Caffe's files: prototxt nets and solvers, .caffemodel weights,
.binaryproto blobs.

Readers return messages of `caffe_pb2`, already upgraded to the current form
(see `upgrade`). Every problem with a file becomes a PrototxtError whose
message starts with the file name, and with ``FILE:LINE:COL:`` when the text
itself is at fault. Writers replace their target atomically.
"""
import re

import numpy as np
from google.protobuf import message as _message
from google.protobuf import text_format

from ..core.atomic import write_bytes
from ..core.blob import MAX_AXES
from ..errors import PrototxtError
from . import caffe_pb2, upgrade

_POSITION = re.compile(r"^\d+:\d+ : ")
_SHAPE = re.compile(r"\b\w*shape\s*\{")                # BlobShape fields: shape, input_shape
_NAME = re.compile(r"\bname\s*:\s*[\"']([^\"']*)[\"']")


def parse_net(text, filename="<string>"):
    """Parse prototxt `text` into an upgraded NetParameter."""
    net = _parse(text, caffe_pb2.NetParameter(), filename)
    return _upgraded(upgrade.upgrade_net, net, filename)


def read_net(path):
    """Read a net from a prototxt file, or from a binary file ending in .caffemodel."""
    if str(path).endswith(".caffemodel"):
        return read_caffemodel(path)
    return parse_net(_read_text(path), str(path))


def parse_solver(text, filename="<string>"):
    """Parse prototxt `text` into an upgraded SolverParameter (inline nets upgraded too)."""
    solver = _upgraded(upgrade.upgrade_solver, _parse(text, caffe_pb2.SolverParameter(), filename), filename)
    for name in ("net_param", "train_net_param"):
        if solver.HasField(name):
            getattr(solver, name).CopyFrom(_upgraded(upgrade.upgrade_net, getattr(solver, name), filename))
    for i, net in enumerate(solver.test_net_param):
        solver.test_net_param[i].CopyFrom(_upgraded(upgrade.upgrade_net, net, filename))
    return solver


def read_solver(path):
    """Read a solver prototxt file into an upgraded SolverParameter."""
    return parse_solver(_read_text(path), str(path))


def read_caffemodel(path):
    """Read a binary NetParameter (.caffemodel), upgraded like a prototxt net."""
    net = _read_binary(path, caffe_pb2.NetParameter())
    return _upgraded(upgrade.upgrade_net, net, str(path))


def write_caffemodel(net, path):
    """Write NetParameter `net` in Caffe's binary form, atomically."""
    try:
        data = net.SerializeToString()
    except _message.EncodeError as err:
        raise PrototxtError(f"{path}: cannot write the net: {err}") from None
    write_bytes(path, data)


def read_blobproto(path):
    """Read a binary BlobProto, such as a mean file (.binaryproto)."""
    return _read_binary(path, caffe_pb2.BlobProto())


def blob_to_array(blob, dtype=np.float32):
    """The values of BlobProto `blob` as an array of `dtype`, shaped as Caffe would.

    As Caffe's Blob::FromProto: the legacy 4-D num/channels/height/width when any of
    those is set, else ``shape.dim`` -- none at all for a 0-D blob, which Caffe writes
    with no ``shape`` (PReLU's channel_shared slope). Values come from ``double_data``
    when it is filled, else from ``data``.
    """
    if any(blob.HasField(field) for field in ("num", "channels", "height", "width")):
        shape = (blob.num, blob.channels, blob.height, blob.width)
    else:
        shape = tuple(blob.shape.dim)
    values = blob.double_data if len(blob.double_data) else blob.data
    array = np.array(values, dtype=dtype)
    if array.size != int(np.prod(shape)):
        raise PrototxtError(f"blob holds {array.size} values but its shape {shape} "
                            f"needs {int(np.prod(shape))}")
    return array.reshape(shape)


def array_to_blob(array):
    """A BlobProto holding `array`: float64 in ``double_data``, anything else as float32 ``data``."""
    array = np.asarray(array)
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(array.shape)
    # The packed field's wire bytes, parsed by protobuf: a list of Python floats would cost ~30x the
    # array's memory and minutes for a 60M-parameter net
    double = array.dtype == np.float64
    values = array.astype("<f8" if double else "<f4", copy=False).tobytes()
    key = (8 if double else 5) << 3 | 2           # double_data = 8, data = 5, length-delimited
    blob.MergeFromString(_varint(key) + _varint(len(values)) + values)
    return blob


def _varint(number):
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        out.append(low | (0x80 if number else 0))
        if not number:
            return bytes(out)


def net_to_text(message):
    """Any message (usually a NetParameter) in prototxt form."""
    return text_format.MessageToString(message)


def write_text(message, path):
    """Write `message` as prototxt to `path`, atomically."""
    write_bytes(path, net_to_text(message).encode("utf-8"))


def _refuse_long_shapes(text, filename):
    """A shape of more axes than a blob can hold, refused before protobuf's parser reads it (a
    shape of a million dims is 15 s of parsing, a 200 MB one minutes): FILE:LINE and its layer."""
    for match in _SHAPE.finditer(text):
        end = text.find("}", match.end())
        body = text[match.end():end if end >= 0 else len(text)]
        if body.count("dim") <= MAX_AXES and "[" not in body:
            continue
        body = re.sub(r"#[^\n]*", "", body)            # comments
        lists = re.findall(r"\bdim\s*:\s*\[([^\]]*)\]", body)
        axes = len(re.findall(r"\bdim\b", body)) - len(lists) + sum(len(v.split(",")) for v in lists if v.strip())
        if axes > MAX_AXES:
            names = _NAME.findall(text, max(0, match.start() - 4096), match.start())
            layer = f"layer '{names[-1]}': " if names else ""
            raise PrototxtError(f"{filename}:{text.count(chr(10), 0, match.start()) + 1}: {layer}a shape of "
                                f"{axes} axes; a blob has at most {MAX_AXES} (Caffe's kMaxBlobAxes)")


def _parse(text, message, filename):
    _refuse_long_shapes(text, filename)
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as err:
        what = _POSITION.sub("", str(err)).replace('"firecaffe.caffe.', '"caffe.')   # Caffe's names
        if err.GetLine() is None:
            raise PrototxtError(f"{filename}: {what}") from None
        raise PrototxtError(f"{filename}:{err.GetLine()}:{err.GetColumn()}: {what}") from None


def _upgraded(function, message, filename):
    try:
        return function(message)
    except PrototxtError as err:
        raise PrototxtError(f"{filename}: {err}") from None


def _read_text(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        raise PrototxtError(f"{path}: no such file") from None
    except UnicodeDecodeError as err:
        raise PrototxtError(f"{path}: not a text file ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise PrototxtError(f"{path}: cannot read ({err.strerror})") from None


def _read_binary(path, message):
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise PrototxtError(f"{path}: no such file") from None
    except OSError as err:
        raise PrototxtError(f"{path}: cannot read ({err.strerror})") from None
    try:
        message.ParseFromString(data)
    except _message.DecodeError:
        raise PrototxtError(f"{path}: not a readable binary {type(message).__name__} "
                            "(truncated, or another kind of file?)") from None
    return message
