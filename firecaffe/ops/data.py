"""Layers without bottoms that produce the net's inputs: Input, DummyData,
HDF5Data, Data.

Caffe types and parameters:
  Input      input_param { shape (one for all tops, or one per top) }
  DummyData  dummy_data_param { data_filler, shape | legacy num/channels/height/width }
             constant fillers fill once at setup, the others on every forward
  HDF5Data   hdf5_data_param { source (a text file listing .h5 files), batch_size, shuffle }
             one dataset per top, named like the top blob
  Data       data_param { source (an LMDB of Datum records), batch_size, backend (LMDB),
             rand_skip }, transform_param { scale, mean_file, mean_value, crop_size, mirror }
             tops: data (N, C, H, W) and optionally label (N,)

HDF5Data and Data read one rank's shard (``layer.shard = (rank, size)``, set by
the net before setup): rank r takes the r-th slice of batch_size samples of
every global batch (see firecaffe.data.sharding), so p ranks of batch b read
what one rank of batch p*b reads. ``get_state()``/``set_state()`` carry the
read position through snapshots.
"""
import numpy as np

from ..core import backend
from ..data import HDF5Source, LMDBSource, ShardCursor, Transformer
from ..data.db import datum_to_array, parse_datum, record_name
from ..data.staging import staged_forward
from ..errors import DataError, PrototxtError
from . import register
from .base import Layer


@register("Input")
class Input(Layer):
    exact_num_bottom = 0
    min_num_top = 1

    def layer_setup(self, bottom, top):
        shapes = self.param.input_param.shape
        if len(shapes) not in (0, 1, len(top)):
            self.fail(f"input_param gives {len(shapes)} shapes for {len(top)} tops: give one shape, "
                      "one per top, or none", PrototxtError)
        for i, blob in enumerate(top):
            if shapes:
                blob.reshape(shapes[i if len(shapes) > 1 else 0].dim)

    def reshape(self, bottom, top):
        """Inputs keep the shape they were given (net.forward may reshape them)."""

    def forward(self, bottom, top):
        pass


@register("DummyData")
class DummyData(Layer):
    is_data = True
    exact_num_bottom = 0
    min_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.dummy_data_param
        n = len(top)
        fillers = list(p.data_filler)
        if len(fillers) not in (0, 1, n):
            self.fail(f"{len(fillers)} data_filler(s) for {n} tops: give 0, 1 or one per top", PrototxtError)
        if not fillers:
            from ..proto import caffe_pb2
            fillers = [caffe_pb2.FillerParameter(type="constant", value=0)]
        self.fillers = [fillers[i if len(fillers) > 1 else 0] for i in range(n)]
        self.shapes = [self._shape(p, i, n) for i in range(n)]
        self.refill = [f.type != "constant" for f in self.fillers]
        for blob, shape, filler in zip(top, self.shapes, self.fillers):
            blob.reshape(shape)
            self._fill(blob, filler)

    def _shape(self, p, i, n):
        legacy = (p.num, p.channels, p.height, p.width)
        if any(len(f) for f in legacy):
            if len(p.shape):
                self.fail("give either shape or num/channels/height/width, not both", PrototxtError)
            for name, values in zip(("num", "channels", "height", "width"), legacy):
                if len(values) not in (1, n):
                    self.fail(f"{len(values)} value(s) of {name} for {n} tops: give 1 or one per top",
                              PrototxtError)
            return tuple(values[i if len(values) > 1 else 0] for values in legacy)
        if len(p.shape) not in (1, n):
            self.fail(f"{len(p.shape)} shape(s) for {n} tops: give 1 or one per top", PrototxtError)
        return tuple(p.shape[i if len(p.shape) > 1 else 0].dim)

    def _fill(self, blob, filler):
        from ..core.fillers import fill
        blob.data[...] = backend.xp_of(blob.data).asarray(fill(filler, blob.shape, blob.dtype))

    def reshape(self, bottom, top):
        for blob, shape in zip(top, self.shapes):
            blob.reshape(shape)

    def forward(self, bottom, top):
        for blob, filler, refill in zip(top, self.fillers, self.refill):
            if refill:
                self._fill(blob, filler)


class _SourceLayer(Layer):
    """A data layer reading this rank's shard of a source through a ShardCursor."""
    is_data = True
    exact_num_bottom = 0
    shard = (0, 1)
    batch_indices = None        # source indices of the batch in the tops (for error messages)

    def describe_sample(self, n):
        """Where sample ``n`` of the batch in the tops came from, or None."""
        if self.batch_indices is None or not 0 <= n < len(self.batch_indices):
            return None
        return self._describe_index(int(self.batch_indices[n]))

    def _describe_index(self, index):
        return None

    def _batch_size(self, p, what):
        if p.batch_size <= 0:
            self.fail(f"{what}.batch_size must be positive (got {p.batch_size})", PrototxtError)
        return int(p.batch_size)

    def _cursor(self, num_samples, seed=None, order=None, position=0):
        self.seed = seed
        try:
            return ShardCursor(num_samples, self.batch_size, self.shard, order, position)
        except DataError as exc:
            self.fail(str(exc), DataError)

    def get_state(self):
        """The read position, JSON-able, for snapshots."""
        return {"position": int(self.cursor.position), "seed": self.seed,
                "samples": self.cursor.num_samples}

    def set_state(self, state):
        """Continue reading where ``get_state()`` was taken."""
        if state.get("samples", self.cursor.num_samples) != self.cursor.num_samples:
            self.fail(f"the snapshot was taken on a source of {state['samples']} samples, "
                      f"this one holds {self.cursor.num_samples}", DataError)
        if state.get("seed") != self.seed:
            self.seed = state.get("seed")
            self.cursor = self._cursor(self.cursor.num_samples, self.seed, self._order(self.seed))
        self.cursor.position = int(state["position"])

    def _order(self, seed):
        return None

    def _to_top(self, blob, host):
        if host is not blob.data:
            blob.data[...] = backend.xp_of(blob.data).asarray(host)

    def _host(self, blob):
        """An array the batch is assembled in: the top itself on the CPU."""
        return blob.data if isinstance(blob.data, np.ndarray) else np.empty(blob.shape, blob.dtype)


@register("HDF5Data")
class HDF5Data(_SourceLayer):
    min_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.hdf5_data_param
        self.batch_size = self._batch_size(p, "hdf5_data_param")
        if not p.source:
            self.fail("hdf5_data_param.source is not set", PrototxtError)
        self.names = list(self.param.top) or [f"top{i}" for i in range(len(top))]
        try:
            self.source = HDF5Source(p.source, self.names)
        except DataError as exc:
            self.fail(str(exc), DataError)
        seed = int(backend.rng().integers(2 ** 31)) if p.shuffle else None
        self.cursor = self._cursor(self.source.num_samples, seed, self._order(seed))

    def _order(self, seed):
        return None if seed is None else self.source.order(seed)

    def reshape(self, bottom, top):
        for blob, name in zip(top, self.names):
            blob.reshape((self.batch_size,) + self.source.shapes[name])

    def _describe_index(self, index):
        path, row = self.source.locate(index)
        return f"{path}, row {row}"

    def forward_cpu(self, bottom, top):
        indices = self.cursor.next()
        self.batch_indices = indices
        hosts = {name: self._host(blob) for name, blob in zip(self.names, top)}
        try:
            self.source.read(indices, hosts)
        except DataError as exc:
            self.fail(str(exc), DataError)
        for name, blob in zip(self.names, top):
            self._to_top(blob, hosts[name])

    forward_gpu = staged_forward  # pinned, one batch ahead (firecaffe.data.staging)


@register("Data")
class Data(_SourceLayer):
    min_num_top = 1
    max_num_top = 2

    def layer_setup(self, bottom, top):
        p = self.param.data_param
        self.batch_size = self._batch_size(p, "data_param")
        if not p.source:
            self.fail("data_param.source is not set", PrototxtError)
        if p.HasField("backend") and p.backend != p.LMDB:
            self.fail(f"data_param.backend LEVELDB is not supported (source {p.source}); "
                      "convert the database to LMDB", DataError)
        where = f"layer '{self.name}' (Data): "
        try:
            self.source = LMDBSource(p.source)
            self.transformer = Transformer(self.param.transform_param, self.phase, where)
            tp = self.param.transform_param
            self.decode = dict(force_color=tp.force_color, force_gray=tp.force_gray)
            key, value = self.source.read([0])[0]
            first = datum_to_array(parse_datum(value, key, p.source), key, p.source, **self.decode)
            self.image_shape = first.shape
            self.out_shape = self.transformer.output_shape(first.shape)
        except DataError as exc:
            if str(exc).startswith(where):
                raise
            self.fail(str(exc), DataError)
        skip = int(backend.rng().integers(p.rand_skip)) if p.rand_skip else 0
        self.cursor = self._cursor(self.source.num_samples, position=skip)

    def reshape(self, bottom, top):
        top[0].reshape((self.batch_size,) + tuple(self.out_shape))
        if len(top) > 1:
            top[1].reshape((self.batch_size,))

    def forward_cpu(self, bottom, top):
        try:
            self._load(top)
        except DataError as exc:
            self.fail(str(exc), DataError)

    forward_gpu = staged_forward

    def _describe_index(self, index):
        try:
            key = self.source.read([index])[0][0]
        except DataError:
            return f"{self.param.data_param.source}, record number {index}"
        return f"{self.param.data_param.source}, record {record_name(key)} (number {index})"

    def _load(self, top):
        source = self.param.data_param.source
        indices = self.cursor.next()
        self.batch_indices = indices
        records = self.source.read(indices)
        images, labels = [], np.empty(self.batch_size, dtype=top[0].dtype)
        for i, (key, value) in enumerate(records):
            datum = parse_datum(value, key, source)
            images.append((key, datum_to_array(datum, key, source, **self.decode)))
            labels[i] = datum.label
        out = self._host(top[0])
        if all(image.shape == self.image_shape for _, image in images):
            batch = np.empty((self.batch_size,) + tuple(self.image_shape), dtype=top[0].dtype)
            for i, (_, image) in enumerate(images):
                batch[i] = image
            self.transformer(batch, out)
        else:                       # images of other sizes: fine when cropping to one size
            for i, (key, image) in enumerate(images):
                try:
                    shape = self.transformer.output_shape(image.shape)
                except DataError as exc:
                    raise DataError(f"{source}: record {record_name(key)}: {exc}") from None
                if shape != tuple(self.out_shape):
                    raise DataError(f"{source}: record {record_name(key)} holds a {image.shape} image, the "
                                    f"first record a {tuple(self.image_shape)} one (set crop_size "
                                    "to read images of several sizes)")
                self.transformer(image[None].astype(top[0].dtype), out[i:i + 1])
        self._to_top(top[0], out)
        if len(top) > 1:
            top[1].data[...] = backend.xp_of(top[1].data).asarray(labels)
