"""Data sources for the data layers: HDF5 file lists and LMDB databases of
Caffe Datum records, the shard/read-position logic every rank follows, and
Caffe's transform_param (scale, mean, crop, mirror)."""
from .db import LMDBSource, make_datum, write_lmdb
from .hdf5 import HDF5Source
from .sharding import ShardCursor
from .transformer import Transformer

__all__ = ["HDF5Source", "LMDBSource", "ShardCursor", "Transformer", "make_datum", "write_lmdb"]
