"""WindowData: R-CNN fine-tuning batches of windows cropped from images.

Caffe type "WindowData", window_data_param:
  source        a window file (see firecaffe.data.windows for the format)
  root_folder   prepended to every image path (plain concatenation)
  batch_size, fg_threshold (0.5), bg_threshold (0.5), fg_fraction (0.25)
  context_pad   pixels of context around each window at the output scale
  crop_mode     "warp" (default) or "square" (the window squared before warping)
  scale         multiplies the pixels (taken from here, not from transform_param)
  cache_images  accepted; files are read at every use (the OS caches them)
transform_param { crop_size (required), mirror, mean_file | mean_value }.
Tops: data (batch_size, C, crop_size, crop_size) and label (batch_size,).

As in Caffe, windows with overlap >= fg_threshold are foreground (their label),
those with overlap < bg_threshold background (label 0), others unused; every
batch holds batch_size - int(batch_size * fg_fraction) background windows then
the foreground ones, each drawn uniformly with replacement, mirrored with
probability 1/2 when mirror is set; images are read in color; pixels of the
crop square outside the warped window stay 0 (not minus the mean). The draws of
batch t come from a generator seeded by (layer seed, t, rank): ranks draw
different windows, and the snapshot keeps the seed and t for an exact resume.
"""
import threading

import numpy as np

from ..core import backend
from ..data.images import load_image
from ..data.prefetch import Prefetcher
from ..data.staging import staged_forward
from ..data.transformer import _read_mean
from ..data.windows import WindowFile, crop_window
from ..errors import DataError, PrototxtError
from . import register
from .data import _SourceLayer


@register("WindowData")
class WindowData(_SourceLayer):
    min_num_top = 1
    max_num_top = 2

    def layer_setup(self, bottom, top):
        p, tp = self.param.window_data_param, self.param.transform_param
        self.batch_size = self._batch_size(p, "window_data_param")
        self.crop = int(tp.crop_size)
        if self.crop <= 0:
            self.fail("WindowData needs transform_param.crop_size > 0", PrototxtError)
        if p.crop_mode not in ("warp", "square"):
            self.fail(f"window_data_param.crop_mode must be 'warp' or 'square', got '{p.crop_mode}'",
                      PrototxtError)
        if 2 * p.context_pad >= self.crop:
            self.fail(f"context_pad {p.context_pad} leaves nothing of crop_size {self.crop}", PrototxtError)
        try:
            self.windows = WindowFile(p.source, p.root_folder, p.fg_threshold, p.bg_threshold)
        except DataError as exc:
            self.fail(str(exc), DataError)
        if not self.windows.fg or not self.windows.bg:
            self.fail(f"{p.source} holds {len(self.windows.fg)} foreground and {len(self.windows.bg)} "
                      "background windows; WindowData needs at least one of each", DataError)
        self.channels = self.windows.images[0][1]
        self.num_fg = int(np.float32(self.batch_size) * np.float32(p.fg_fraction))
        self._setup_mean(tp)
        self.seed = int(backend.rng().integers(2 ** 31))
        self.cursor = _BatchCounter(self.batch_size)      # counts batches drawn
        self.plans = {}                # batch -> [(window, mirror)]
        self.plans_lock = threading.Lock()     # decoding threads plan batches too
        self.decoder = Prefetcher(self._sample)
        self.decoder.ahead(self.cursor.peek())

    def _setup_mean(self, tp):
        self.mean = None
        if tp.HasField("mean_file"):
            if len(tp.mean_value):
                self.fail("transform_param: set mean_file or mean_value, not both", PrototxtError)
            try:
                self.mean = _read_mean(tp.mean_file, "")
            except DataError as exc:
                self.fail(str(exc), DataError)
            if self.mean.shape[2] < self.crop:
                self.fail(f"the mean file holds a {self.mean.shape} image, smaller than crop_size {self.crop}",
                          DataError)
        elif len(tp.mean_value):
            if len(tp.mean_value) not in (1, self.channels):
                self.fail(f"give 1 mean_value or one per channel ({self.channels})", PrototxtError)
            self.mean = np.asarray(tp.mean_value, np.float32).reshape(-1, 1, 1)

    def _plan(self, batch):
        """The windows of ``batch`` and whether each is mirrored."""
        with self.plans_lock:
            return self._plan_locked(batch)

    def _plan_locked(self, batch):
        if batch not in self.plans:
            gen = np.random.default_rng([self.seed, batch, self.shard[0]])
            bg = gen.integers(0, len(self.windows.bg), self.batch_size - self.num_fg)
            fg = gen.integers(0, len(self.windows.fg), self.num_fg)
            flips = gen.integers(0, 2, self.batch_size).astype(bool) & self.param.transform_param.mirror
            chosen = [self.windows.bg[i] for i in bg] + [self.windows.fg[i] for i in fg]
            while len(self.plans) > 3:
                self.plans.pop(min(self.plans))
            self.plans[batch] = list(zip(chosen, flips))
        return self.plans[batch]

    def _sample(self, item):
        """Item ``item`` (batch * batch_size + position) as a transformed (C, crop, crop) array."""
        window, flip = self._plan(item // self.batch_size)[item % self.batch_size]
        p = self.param.window_data_param
        path = self.windows.images[window[0]][0]
        try:
            pixels, pad_h, pad_w = crop_window(load_image(path), window, self.crop, p.context_pad,
                                               p.crop_mode == "square", flip)
        except DataError as exc:
            raise DataError(f"{p.source}: image {window[0]} ({path}): {exc}") from None
        out = np.zeros((pixels.shape[0], self.crop, self.crop), np.float32)
        h, w = pixels.shape[1:]
        values = pixels.astype(np.float32)
        if self.mean is not None and self.mean.shape[1] > 1:          # mean_file, centred
            off = (self.mean.shape[2] - self.crop) // 2
            values -= self.mean[:, off + pad_h:off + pad_h + h, off + pad_w:off + pad_w + w]
        elif self.mean is not None:
            values -= self.mean
        out[:, pad_h:pad_h + h, pad_w:pad_w + w] = values * np.float32(p.scale)
        return out, window[1]

    def reshape(self, bottom, top):
        top[0].reshape((self.batch_size, self.channels, self.crop, self.crop))
        if len(top) > 1:
            top[1].reshape((self.batch_size,))

    def forward_cpu(self, bottom, top):
        try:
            samples = self.decoder.take(self.cursor.next())
        except DataError as exc:
            self.fail(str(exc), DataError)
        self.decoder.ahead(self.cursor.peek())
        out = self._host(top[0])
        for i, (pixels, _) in enumerate(samples):
            if pixels.shape[0] != self.channels:
                self.fail(f"an image has {pixels.shape[0]} channels, the window file says {self.channels}",
                          DataError)
            out[i] = pixels
        self._to_top(top[0], out)
        if len(top) > 1:
            labels = np.array([label for _, label in samples], dtype=top[1].dtype)
            top[1].data[...] = backend.xp_of(top[1].data).asarray(labels)

    forward_gpu = staged_forward

    def get_state(self):
        return {"seed": self.seed, "batch": int(self.cursor.position)}

    def set_state(self, state):
        self.seed, self.cursor.position = int(state["seed"]), int(state["batch"])
        self.plans.clear()
        self.decoder.pending.clear()
        self.decoder.ahead(self.cursor.peek())


class _BatchCounter:
    """The read position of WindowData: batch t is items t*b ... t*b + b - 1.
    Offers what firecaffe.data.staging uses of a ShardCursor."""

    def __init__(self, batch_size):
        self.batch_size, self.position = batch_size, 0

    def peek(self):
        return np.arange(self.position * self.batch_size, (self.position + 1) * self.batch_size)

    def next(self):
        items = self.peek()
        self.position += 1
        return items
