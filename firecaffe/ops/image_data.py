"""ImageData: images named in a list file, decoded ahead of use in background threads.

Caffe type "ImageData", image_data_param:
  source        a text file of 'path label' lines (the label after the last space)
  root_folder   prepended to every path by plain concatenation, as Caffe does
                (so it needs its trailing slash)
  batch_size, shuffle (a new order every epoch), rand_skip
  new_height, new_width   resize every image (both or neither), OpenCV's bilinear
  is_color      3 channels in BGR order (default) or 1 gray channel
transform_param { scale, mirror, crop_size, mean_file, mean_value } as for Data.
Tops: data (N, C, H, W) and label (N,).

Decoding is Pillow's (see firecaffe.data.images for how it compares with
OpenCV's). All images of a net must come out one size: set new_height/new_width
or crop_size when the files differ (Caffe reshapes per batch; a net here keeps
its shapes). Under MPI each rank reads its shard of every global batch; the read
position and the shuffle seed go into snapshots for an exact resume.
"""
import numpy as np

from ..core import backend
from ..data import Transformer
from ..data.images import load_image, read_list
from ..data.prefetch import Prefetcher
from ..data.staging import staged_forward
from ..errors import DataError, PrototxtError
from . import register
from .data import _SourceLayer


@register("ImageData")
class ImageData(_SourceLayer):
    min_num_top = 1
    max_num_top = 2

    def layer_setup(self, bottom, top):
        p = self.param.image_data_param
        self.batch_size = self._batch_size(p, "image_data_param")
        if not p.source:
            self.fail("image_data_param.source is not set", PrototxtError)
        if (p.new_height > 0) != (p.new_width > 0):
            self.fail("set new_height and new_width together (or neither)", PrototxtError)
        where = f"layer '{self.name}' (ImageData): "
        try:
            self.paths, self.labels, self.line_numbers = read_list(p.source)
            self.transformer = Transformer(self.param.transform_param, self.phase, where)
        except DataError as exc:
            if str(exc).startswith(where):
                raise
            self.fail(str(exc), DataError)
        self.decoder = Prefetcher(self._decode)
        n = len(self.paths)
        seed = int(backend.rng().integers(2 ** 31)) if p.shuffle else None
        skip = int(backend.rng().integers(p.rand_skip)) if p.rand_skip else 0
        self.cursor = self._cursor(n, seed, self._order(seed), position=skip)
        first = self._decode_or_fail(int(self.cursor.peek()[0]))
        self.image_shape = first.shape
        try:
            self.out_shape = self.transformer.output_shape(first.shape)
        except DataError as exc:
            self.fail(str(exc), DataError)
        self.decoder.ahead(self.cursor.peek())

    def _order(self, seed):
        if seed is None:
            return None
        n = len(self.paths)
        return lambda epoch: np.random.default_rng([seed, int(epoch)]).permutation(n)

    def _decode(self, index):
        p = self.param.image_data_param
        try:
            return load_image(p.root_folder + self.paths[index], p.new_height, p.new_width, p.is_color)
        except DataError as exc:
            hint = ""
            if p.root_folder and not p.root_folder.endswith("/"):
                hint = (f" (root_folder '{p.root_folder}' is prepended as it is, as in Caffe: "
                        "end it with '/')")
            raise DataError(f"{p.source}:{self.line_numbers[index]}: {exc}{hint}") from None

    def _decode_or_fail(self, index):
        try:
            return self._decode(index)
        except DataError as exc:
            self.fail(str(exc), DataError)

    def _describe_index(self, index):
        p = self.param.image_data_param
        return f"{p.source}:{self.line_numbers[index]}: {p.root_folder + self.paths[index]}"

    def reshape(self, bottom, top):
        top[0].reshape((self.batch_size,) + tuple(self.out_shape))
        if len(top) > 1:
            top[1].reshape((self.batch_size,))

    def forward_cpu(self, bottom, top):
        indices = self.cursor.next()
        self.batch_indices = indices
        try:
            images = self.decoder.take(indices)
        except DataError as exc:
            self.fail(str(exc), DataError)
        self.decoder.ahead(self.cursor.peek())
        out = self._host(top[0])
        if all(image.shape == self.image_shape for image in images):
            self.transformer(np.stack(images).astype(out.dtype), out)
        else:
            for i, (index, image) in enumerate(zip(indices, images)):
                try:
                    shape = self.transformer.output_shape(image.shape)
                except DataError as exc:
                    self.fail(f"{self._describe_index(index)}: {exc}", DataError)
                if shape != tuple(self.out_shape):
                    self.fail(f"{self._describe_index(index)} is a {image.shape[2]}x{image.shape[1]} "
                              f"image with {image.shape[0]} channel(s), the first one "
                              f"{self.image_shape[2]}x{self.image_shape[1]} with {self.image_shape[0]}; "
                              "set new_height/new_width or crop_size to read images of several sizes",
                              DataError)
                self.transformer(image[None].astype(out.dtype), out[i:i + 1])
        self._to_top(top[0], out)
        if len(top) > 1:
            top[1].data[...] = backend.xp_of(top[1].data).asarray(self.labels[indices].astype(top[1].dtype))

    forward_gpu = staged_forward

    def set_state(self, state):
        super().set_state(state)
        self.decoder.ahead(self.cursor.peek())
