"""LMDB databases of Caffe Datum records: reading them in key order with one
cursor, decoding records, and writing them (``write_lmdb``).

A Datum holds one image as channels/height/width plus either ``data`` (uint8
bytes, C*H*W of them, channel-major) or ``float_data``, and an integer label;
``encoded: true`` means ``data`` is a JPEG or PNG file, decoded here with Pillow
as OpenCV's imread would (firecaffe.data.images): BGR, gray files stay gray
unless transform_param's force_color / force_gray say otherwise.
"""
import io as _io
import os
import weakref

import numpy as np

from ..errors import DataError


def _lmdb():
    try:
        import lmdb
    except ImportError:
        raise DataError("reading or writing LMDB needs the 'lmdb' package: pip install lmdb") from None
    return lmdb


_ENVS = weakref.WeakValueDictionary()   # real path -> read-only environment (lmdb opens each once per process)


def _open_env(path):
    lmdb = _lmdb()
    key = os.path.realpath(path)
    env = _ENVS.get(key)
    if env is None:
        env = lmdb.open(path, readonly=True, lock=False, readahead=False,
                        subdir=os.path.isdir(path), max_readers=512)
        _ENVS[key] = env
    return env


class LMDBSource:
    """Records of an LMDB database by index, in key order, through one read cursor.

    Sources on the same database (a TRAIN and a TEST net, or several ranks in
    one process) share its environment, each with its own transaction.
    """

    def __init__(self, path):
        lmdb = _lmdb()
        self.path = str(path)
        if not os.path.exists(self.path):
            raise DataError(f"{self.path}: no such LMDB database")
        try:
            self.env = _open_env(self.path)
            self.txn = self.env.begin(buffers=False)
            self.num_samples = int(self.txn.stat()["entries"])
        except lmdb.Error as exc:
            raise DataError(f"{self.path}: not a readable LMDB database ({exc})") from None
        if self.num_samples == 0:
            raise DataError(f"{self.path}: the LMDB database holds no records")
        self.cursor = self.txn.cursor()
        self.index = None            # record the cursor points at

    def seek(self, index):
        """Point the cursor at record ``index`` (stepping forward, or from the first)."""
        lmdb = _lmdb()
        try:
            self._seek(index)
        except lmdb.Error as exc:      # a damaged page: lmdb.CorruptedError, PageNotFoundError, ...
            self.index = None          # the cursor's position is unknown now
            raise DataError(f"{self._file()}: cannot read record {index} of {self.num_samples} "
                            f"(LMDB says: {exc}); the database is damaged: rebuild or restore it") from None

    def _file(self):
        return os.path.join(self.path, "data.mdb") if os.path.isdir(self.path) else self.path

    def _seek(self, index):
        if self.index is None or index < self.index:
            self.cursor.first()
            self.index = 0
        while self.index < index:
            if not self.cursor.next():
                raise DataError(f"{self.path}: ended after {self.index + 1} records, "
                                f"its header says {self.num_samples}")
            self.index += 1

    def read(self, indices):
        """[(key, value)] of the records at ``indices``."""
        out = []
        lmdb = _lmdb()
        for index in indices:
            self.seek(int(index))
            try:
                out.append((self.cursor.key(), self.cursor.value()))
            except lmdb.Error as exc:
                self.index = None
                raise DataError(f"{self._file()}: cannot read record {index} of {self.num_samples} "
                                f"(LMDB says: {exc}); the database is damaged: rebuild or restore it") from None
        return out

    def close(self):
        self.cursor.close()
        self.txn.abort()


def parse_datum(value, key, source):
    from ..proto import caffe_pb2
    datum = caffe_pb2.Datum()
    try:
        datum.ParseFromString(value)
    except Exception as exc:       # protobuf's DecodeError, or worse on garbage
        raise DataError(f"{source}: record {record_name(key)} is not a Caffe Datum ({exc})") from None
    return datum


def datum_to_array(datum, key, source, force_color=False, force_gray=False):
    """The image of a Datum as a (C, H, W) uint8 or float32 array."""
    if datum.encoded:
        return _decode_image(datum.data, key, source, force_color, force_gray)
    shape = (datum.channels, datum.height, datum.width)
    count = int(np.prod(shape))
    if min(shape) <= 0:
        raise DataError(f"{source}: record {record_name(key)} has shape {shape}")
    if datum.data:
        if len(datum.data) != count:
            raise DataError(f"{source}: record {record_name(key)} holds {len(datum.data)} bytes, "
                            f"its shape {shape} needs {count}")
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape)
    if len(datum.float_data) != count:
        raise DataError(f"{source}: record {record_name(key)} holds {len(datum.float_data)} values, "
                        f"its shape {shape} needs {count}")
    return np.asarray(datum.float_data, dtype=np.float32).reshape(shape)


def _decode_image(data, key, source, force_color, force_gray):
    from .images import decode
    mode = "color" if force_color else "gray" if force_gray else "native"
    try:
        return decode(_io.BytesIO(data), mode)
    except DataError as exc:
        raise DataError(f"{source}: record {record_name(key)}: cannot decode the encoded image ({exc})") from None


def record_name(key):
    """A record's key as it appears in messages."""
    return repr(bytes(key).decode("utf-8", "replace"))


def make_datum(image, label, encoding=None):
    """A Datum holding ``image`` (C, H, W): uint8 as ``data``, other types as
    ``float_data``; ``encoding`` 'png' or 'jpg' stores a uint8 image encoded."""
    from ..proto import caffe_pb2
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"an image must be (C, H, W), got shape {image.shape}")
    datum = caffe_pb2.Datum(label=int(label))
    if encoding:
        from PIL import Image
        if image.dtype != np.uint8 or image.shape[0] not in (1, 3):
            raise ValueError("encoded images must be uint8 with 1 or 3 channels")
        pixels = image[0] if image.shape[0] == 1 else image[::-1].transpose(1, 2, 0)   # BGR -> RGB
        buffer = _io.BytesIO()
        Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="JPEG" if encoding.lower() in ("jpg", "jpeg") else encoding.upper())
        datum.data = buffer.getvalue()
        datum.encoded = True
        return datum
    datum.channels, datum.height, datum.width = image.shape
    if image.dtype == np.uint8:
        datum.data = image.tobytes()
    else:
        datum.float_data.extend(image.astype(np.float32).ravel().tolist())
    return datum


def write_lmdb(path, images, labels, encoding=None):
    """Write ``images`` (N, C, H, W) and ``labels`` (N,) as an LMDB of Caffe Datum
    records keyed '00000000', '00000001', ... (key order is read order)."""
    lmdb = _lmdb()
    images = np.asarray(images)
    labels = np.asarray(labels).reshape(-1)
    if images.ndim != 4 or len(images) != len(labels):
        raise ValueError(f"need images (N, C, H, W) and N labels, got {images.shape} and {labels.shape}")
    records = [(b"%08d" % i, make_datum(image, label, encoding).SerializeToString())
               for i, (image, label) in enumerate(zip(images, labels))]
    payload = sum(len(k) + len(v) for k, v in records)
    env = lmdb.open(str(path), map_size=2 * payload + 4096 * (len(records) + 64))
    try:
        with env.begin(write=True) as txn:
            for key, value in records:
                txn.put(key, value)
    finally:
        env.close()
