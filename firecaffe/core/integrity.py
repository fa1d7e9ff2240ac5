"""Checksums beside snapshot files: ``PATH.sha256`` in ``sha256sum``'s format.

The checksum lives in a file of its own so that the snapshot itself stays
byte-for-byte what Caffe writes and reads (``sha256sum -c PATH.sha256`` in the
snapshot folder checks it by hand). It is written, atomically, after the data
file has been renamed into place; a rewrite of the data file first removes the
old checksum (core/atomic.py), so a checksum never describes other bytes. A
file without a checksum (Caffe's, an older firecaffe's, or one whose writer was
killed between the two renames, which leaves complete data) is taken as it is.
"""
import hashlib
import os

from ..errors import FirecaffeError
from .atomic import SIDECAR as SUFFIX, write_bytes

_CHUNK = 1 << 20


def sidecar(path):
    return str(path) + SUFFIX


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def write(path):
    """Record the SHA-256 of ``path`` (already complete on disk) in ``path``.sha256."""
    line = f"{digest(path)}  {os.path.basename(str(path))}\n"
    write_bytes(sidecar(path), line.encode())


def problem(path):
    """Why ``path`` fails its checksum (a short phrase), or None: it matches, or has no checksum."""
    side = sidecar(path)
    try:
        with open(side, "rb") as f:
            text = f.read(4096).decode("ascii", "replace")
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"its checksum file {side} cannot be read ({exc.strerror})"
    expected = text.split()[0].lower() if text.split() else ""
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        return f"its checksum file {side} is damaged"
    try:
        size = os.path.getsize(path)
        actual = digest(path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if actual != expected:
        return (f"its SHA-256 does not match the one recorded in {os.path.basename(side)} when it was "
                f"written ({size} bytes now): the file was changed, cut short or damaged since")
    return None


def verify(path, what=""):
    """Raise one FirecaffeError naming ``path`` if it does not match its checksum."""
    why = problem(path)
    if why:
        raise FirecaffeError(f"{what}{path}: {why}")


def remove(path):
    try:
        os.unlink(sidecar(path))
    except FileNotFoundError:
        pass
