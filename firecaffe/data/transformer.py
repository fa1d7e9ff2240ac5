"""Caffe's DataTransformer for a batch of images: transform_param { scale,
mirror, crop_size, mean_file, mean_value, force_color, force_gray }.

Per image, as in Caffe: out = (x - mean) * scale, where the mean (a full-size
mean_file image, or one mean_value per channel, or one for all) is taken at
the pixel's position before cropping; crop_size crops a random square in TRAIN
and the center one in TEST; mirror flips an image horizontally with
probability 1/2 (Caffe draws the flip in both phases).
"""
import numpy as np

from ..core import backend
from ..errors import DataError, FirecaffeError


class Transformer:
    def __init__(self, param, phase="TRAIN", where=""):
        self.where = where                       # "layer 'data' (Data): " for messages
        self.scale = float(param.scale)
        self.mirror = bool(param.mirror)
        self.crop = int(param.crop_size)
        self.train = phase == "TRAIN"
        self.force_color = bool(param.force_color)
        self.force_gray = bool(param.force_gray)
        if self.force_color and self.force_gray:
            raise DataError(f"{where}transform_param: cannot set both force_color and force_gray")
        self.mean = None
        if param.HasField("mean_file"):
            if len(param.mean_value):
                raise DataError(f"{where}transform_param: set mean_file or mean_value, not both")
            self.mean = _read_mean(param.mean_file, where)
        elif len(param.mean_value):
            self.mean = np.asarray(param.mean_value, dtype=np.float64)

    def output_shape(self, shape):
        """The (C, h, w) an image of ``shape`` (C, H, W) becomes; checks it fits."""
        c, h, w = shape
        if isinstance(self.mean, np.ndarray) and self.mean.ndim == 3 and self.mean.shape != tuple(shape):
            raise DataError(f"{self.where}the mean file holds a {self.mean.shape} image, "
                            f"the data holds {tuple(shape)} images")
        if self.mean is not None and self.mean.ndim == 1 and self.mean.size not in (1, c):
            raise DataError(f"{self.where}transform_param: give 1 mean_value or one per channel "
                            f"({c}), got {self.mean.size}")
        if self.crop:
            if self.crop > h or self.crop > w:
                raise DataError(f"{self.where}crop_size {self.crop} is larger than the "
                                f"{h}x{w} images")
            return (c, self.crop, self.crop)
        return (c, h, w)

    def __call__(self, batch, out=None):
        """Transform ``batch`` (N, C, H, W), a float array it may overwrite;
        returns (N, C, h, w), written into ``out`` when given."""
        n, c, h, w = batch.shape
        if self.mean is not None:
            mean = self.mean if self.mean.ndim == 3 else self.mean.reshape(-1, 1, 1)
            batch -= mean.astype(batch.dtype, copy=False)
        if self.scale != 1:
            batch *= batch.dtype.type(self.scale)
        size = self.crop or None
        gen = backend.rng()
        flips = gen.integers(0, 2, n).astype(bool) if self.mirror else np.zeros(n, bool)
        if size and self.train:
            tops, lefts = gen.integers(0, h - size + 1, n), gen.integers(0, w - size + 1, n)
        elif size:
            tops, lefts = np.full(n, (h - size) // 2), np.full(n, (w - size) // 2)
        if not size and not flips.any():
            if out is None:
                return batch
            out[...] = batch
            return out
        oh, ow = (size, size) if size else (h, w)
        if out is None:
            out = np.empty((n, c, oh, ow), dtype=batch.dtype)
        for i in range(n):
            image = batch[i] if not size else batch[i, :, tops[i]:tops[i] + size, lefts[i]:lefts[i] + size]
            out[i] = image[:, :, ::-1] if flips[i] else image
        return out


def _read_mean(path, where):
    from ..proto import io
    try:
        mean = io.blob_to_array(io.read_blobproto(path), np.float64)
    except FirecaffeError as exc:
        raise DataError(f"{where}mean_file: {exc}") from None
    if mean.ndim == 4:
        if mean.shape[0] != 1:
            raise DataError(f"{where}mean_file {path}: holds {mean.shape[0]} images, expected 1")
        mean = mean[0]
    if mean.ndim != 3:
        raise DataError(f"{where}mean_file {path}: expected a (1, C, H, W) blob, got shape {mean.shape}")
    return mean
