"""HDF5Output: write the two bottoms (data, label) to an HDF5 file.

Caffe type "HDF5Output", hdf5_output_param { file_name }. The file is created
(truncated) at setup; each forward writes the bottoms as 4-D datasets "data" and
"label", as Caffe does (a label of shape (n,) becomes (n, 1, 1, 1); trailing
axes beyond the fourth are folded into it). Caffe fails on the second forward
("Object already exists"); here further forwards append their rows along the
first axis, so a whole test set can be dumped. No tops, no backward. The file is
opened and closed at every forward, so what was written survives a crash.
Under MPI (p > 1 ranks) rank r writes its own shard to NAME.rank<r>.EXT
(features.h5 -> features.rank0.h5, ...), never all ranks to one file.
"""
import os

import numpy as np

from ..core import backend
from ..errors import DataError, PrototxtError
from . import register
from .base import Layer


def as_4d(array):
    """Caffe's legacy num/channels/height/width view of a blob."""
    shape = tuple(array.shape) + (1,) * max(0, 4 - array.ndim)
    return array.reshape(shape[:3] + (int(np.prod(shape[3:], dtype=np.int64)),))


@register("HDF5Output")
class HDF5Output(Layer):
    exact_num_bottom = 2
    exact_num_top = 0
    names = ("data", "label")
    is_data = True           # so that the net tells it its shard (rank, size)
    shard = (0, 1)

    def layer_setup(self, bottom, top):
        self.file_name = self.param.hdf5_output_param.file_name
        if not self.file_name:
            self.fail("hdf5_output_param.file_name is not set", PrototxtError)
        rank, size = self.shard
        if size > 1:
            root, ext = os.path.splitext(self.file_name)
            self.file_name = f"{root}.rank{rank}{ext}"
        h5py = _h5py()
        try:
            h5py.File(self.file_name, "w").close()
        except OSError as exc:
            self.fail(f"cannot create {self.file_name}: {exc}", DataError)

    def reshape(self, bottom, top):
        if bottom[0].shape[:1] != bottom[1].shape[:1]:
            self.fail(f"data and label must have the same number of rows, got {bottom[0].shape} "
                      f"and {bottom[1].shape}")

    def forward(self, bottom, top):
        h5py = _h5py()
        try:
            with h5py.File(self.file_name, "a") as f:
                for name, blob in zip(self.names, bottom):
                    rows = as_4d(backend.to_host(blob.data))
                    if name not in f:
                        f.create_dataset(name, data=rows, maxshape=(None,) + rows.shape[1:], chunks=True)
                        continue
                    dataset = f[name]
                    if dataset.shape[1:] != rows.shape[1:]:
                        self.fail(f"bottom '{name}' changed shape from {dataset.shape[1:]} to "
                                  f"{rows.shape[1:]} per row between forwards", DataError)
                    start = dataset.shape[0]
                    dataset.resize(start + rows.shape[0], axis=0)
                    dataset[start:] = rows
        except OSError as exc:
            self.fail(f"cannot write {self.file_name}: {exc}", DataError)


def _h5py():
    try:
        import h5py
    except ImportError:
        raise DataError("HDF5Output needs h5py: pip install h5py") from None
    return h5py
