"""A source of samples stored in HDF5 files, as Caffe's HDF5Data reads them.

The source is a text file listing .h5 files, one a line; a relative path is
looked up next to the list file first, then in the current directory. Every
file holds the same datasets (one per top blob), whose first axis counts the
samples; the files together form one stream in list order.
"""
import os
from collections import OrderedDict

import numpy as np

from ..errors import DataError
from .sharding import runs

MAX_OPEN = 4          # open file handles kept between reads
FANCY_AFTER = 4       # above this many runs in one file, read by index list


def read_list(path):
    """The .h5 paths listed in the text file ``path``, resolved."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = [line.strip() for line in handle]
    except FileNotFoundError:
        raise DataError(f"{path}: no such file (the HDF5Data source lists the .h5 files)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the HDF5 file list ({exc})") from None
    here = os.path.dirname(os.path.abspath(path))
    files = []
    for line in lines:
        if not line or line.startswith("#"):
            continue
        candidates = [line] if os.path.isabs(line) else [os.path.join(here, line), line]
        found = next((c for c in candidates if os.path.isfile(c)), None)
        if found is None:
            raise DataError(f"{path}: lists {line}, which does not exist "
                            f"(looked for {' and '.join(candidates)})")
        files.append(found)
    if not files:
        raise DataError(f"{path}: lists no HDF5 files")
    return files


class HDF5Source:
    def __init__(self, list_path, names):
        import h5py
        self._h5py = h5py
        self.names = list(names)
        self.files = read_list(list_path)
        self._open = OrderedDict()
        self.lengths, self.shapes, self.dtypes = [], None, None
        for path in self.files:
            length, shapes = self._inspect(path)
            if self.shapes is None:
                self.shapes = shapes
            elif shapes != self.shapes:
                name = next(n for n in self.names if shapes[n] != self.shapes[n])
                raise DataError(f"{path}: dataset '{name}' holds items of shape {shapes[name]}, "
                                f"but {self.files[0]} holds items of shape {self.shapes[name]}")
            self.lengths.append(length)
        self.offsets = np.concatenate(([0], np.cumsum(self.lengths))).astype(np.int64)
        self.num_samples = int(self.offsets[-1])
        if self.num_samples == 0:
            raise DataError(f"{list_path}: the listed HDF5 files hold no samples")

    def _inspect(self, path):
        handle = self._file(path)
        lengths, shapes = {}, {}
        for name in self.names:
            if name not in handle or not isinstance(handle[name], self._h5py.Dataset):
                have = ", ".join(k for k in handle.keys()) or "nothing"
                raise DataError(f"{path}: no dataset '{name}' (the file holds: {have})")
            ds = handle[name]
            if ds.ndim < 1:
                raise DataError(f"{path}: dataset '{name}' is a scalar; its first axis must count samples")
            lengths[name], shapes[name] = ds.shape[0], tuple(ds.shape[1:])
        if len(set(lengths.values())) > 1:
            detail = ", ".join(f"'{n}' {m}" for n, m in lengths.items())
            raise DataError(f"{path}: datasets hold different numbers of samples ({detail})")
        return lengths[self.names[0]], shapes

    def _file(self, path):
        handle = self._open.get(path)
        if handle is not None:
            self._open.move_to_end(path)
            return handle
        try:
            handle = self._h5py.File(path, "r")
        except FileNotFoundError:
            raise DataError(f"{path}: no such file") from None
        except OSError as exc:
            raise DataError(f"{path}: not a readable HDF5 file ({exc})") from None
        self._open[path] = handle
        while len(self._open) > MAX_OPEN:
            self._open.popitem(last=False)[1].close()
        return handle

    def order(self, seed):
        """Caffe's shuffle as a function of the epoch: the file order, then the
        rows within each file, permuted."""
        def epoch_order(epoch):
            gen = np.random.default_rng([int(seed), int(epoch)])
            parts = [self.offsets[f] + gen.permutation(self.lengths[f])
                     for f in gen.permutation(len(self.files))]
            return np.concatenate(parts)
        return epoch_order

    def locate(self, index):
        """(file, row) of sample ``index``."""
        f = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return self.files[f], int(index - self.offsets[f])

    def read(self, indices, outs):
        """Fill ``outs[name][k]`` with sample ``indices[k]`` of each dataset."""
        indices = np.asarray(indices, dtype=np.int64)
        which = np.searchsorted(self.offsets, indices, side="right") - 1
        for f in np.unique(which):
            at = np.nonzero(which == f)[0]
            rows = indices[at] - self.offsets[f]
            path = self.files[f]
            handle = self._file(path)
            try:
                self._read_rows(handle, rows, at, outs)
            except (OSError, ValueError, TypeError) as exc:
                raise DataError(f"{path}: cannot read samples ({exc})") from None

    def _read_rows(self, handle, rows, at, outs):
        pieces = runs(rows)
        if len(pieces) <= FANCY_AFTER:
            for start, stop, k in pieces:
                where = at[k:k + stop - start]
                if where[-1] - where[0] == where.size - 1:      # at increases: a slice
                    where = slice(int(where[0]), int(where[0]) + where.size)
                for name in self.names:
                    outs[name][where] = handle[name][start:stop]
            return
        unique, inverse = np.unique(rows, return_inverse=True)
        for name in self.names:
            outs[name][at] = handle[name][unique][inverse]

    def close(self):
        while self._open:
            self._open.popitem()[1].close()
