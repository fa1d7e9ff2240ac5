"""Layers that cut, repeat or rearrange blobs: Crop, Tile, Im2col, SPP.

Caffe types and parameters:
  Crop    crop_param { axis (2), offset (none: 0; one: every cropped axis; else one per axis
          from axis on) }; bottoms data, reference: the axes from ``axis`` on take the
          reference's sizes. The reference gets no gradient (zero).
  Tile    tile_param { axis (1), tiles }: the axis repeated ``tiles`` times, each copy whole
          (a b a b, not a a b b).
  Im2col  convolution_param { kernel_size / _h / _w, stride, pad, dilation, axis (1) }: the
          columns a convolution multiplies: top (N, C * prod(kernel), *out), channel-major rows
          (c, k_1, ..., k_d) as in Caffe.
  SPP     spp_param { pyramid_height, pool (MAX | AVE) }: level l pools into 2^l x 2^l bins
          (kernel ceil(H / 2^l), stride = kernel, pad (kernel 2^l - H + 1) / 2), each level
          flattened and all concatenated: (N, C * sum 4^l). With pyramid_height 1 the top is
          the pooling output itself, (N, C, 1, 1), as in Caffe.
"""
import itertools
import math

from google.protobuf import text_format

from ..core import backend
from ..core.blob import Blob
from ..errors import PrototxtError
from . import register
from .base import Layer
from .conv_base import window_geometry
from .im2col import out_size, valid_ranges


def _axis(layer, blob, axis):
    try:
        return blob.canonical_axis(axis)
    except ValueError as exc:
        layer.fail(str(exc))


@register("Crop")
class Crop(Layer):
    exact_num_bottom = 2
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.crop_param
        self.axis = _axis(self, bottom[0], p.axis)
        self.offsets = [int(v) for v in p.offset]
        cropped = bottom[0].ndim - self.axis
        if len(self.offsets) > 1 and len(self.offsets) != cropped:
            self.fail(f"{len(self.offsets)} offsets given for the {cropped} axes from axis {self.axis} on "
                      f"(input {bottom[0].shape}): give none, one, or one per axis", PrototxtError)

    def reshape(self, bottom, top):
        data, reference = bottom[0].shape, bottom[1].shape
        if len(reference) != len(data):
            self.fail(f"data {data} and reference {reference} must have the same number of axes")
        shape, self.slices = [], []
        for i, size in enumerate(data):
            if i < self.axis:
                shape.append(size)
                self.slices.append(slice(None))
                continue
            offset = self.offsets[0] if len(self.offsets) == 1 else \
                self.offsets[i - self.axis] if self.offsets else 0
            if size - offset < reference[i]:
                self.fail(f"the crop of axis {i} is out of bounds: size {reference[i]} at offset {offset} "
                          f"in data {data}")
            shape.append(reference[i])
            self.slices.append(slice(offset, offset + reference[i]))
        self.slices = tuple(self.slices)
        top[0].reshape(tuple(shape))

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data[self.slices]

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = 0
            bottom[0].diff[self.slices] = top[0].diff
        if propagate_down[1]:
            bottom[1].diff[...] = 0


@register("Tile")
class Tile(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.tile_param
        if not p.HasField("tiles") or p.tiles < 1:
            self.fail("tile_param.tiles must be given and positive", PrototxtError)
        self.tiles = int(p.tiles)

    def reshape(self, bottom, top):
        self.axis = _axis(self, bottom[0], self.param.tile_param.axis)
        shape = list(bottom[0].shape)
        shape[self.axis] *= self.tiles
        self.outer, self.inner = bottom[0].count_range(0, self.axis), bottom[0].count_range(self.axis)
        top[0].reshape(tuple(shape))

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.outer, 1, self.inner)
        top[0].data.reshape(self.outer, self.tiles, self.inner)[...] = x

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            dy = top[0].diff.reshape(self.outer, self.tiles, self.inner)
            bottom[0].diff[...] = dy.sum(axis=1).reshape(bottom[0].shape)


@register("Im2col")
class Im2col(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.convolution_param
        self.axis = _axis(self, bottom[0], p.axis)
        self.kernel, self.stride, self.pad, self.dilation = window_geometry(self, p, bottom[0], self.axis)

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) != self.axis + 1 + len(self.kernel):
            self.fail(f"input {shape} must keep {len(self.kernel)} spatial axes after axis {self.axis}")
        spatial = shape[self.axis + 1:]
        self.out = tuple(out_size(*a) for a in zip(spatial, self.kernel, self.pad, self.stride, self.dilation))
        if min(self.out) < 1:
            self.fail(f"kernel {self.kernel} (dilation {self.dilation}, pad {self.pad}) does not fit input {shape}")
        self.outer = bottom[0].count_range(0, self.axis)
        self.channels = shape[self.axis]
        self.x_shape = (self.outer, self.channels) + spatial
        self.col_shape = (self.outer, self.channels) + self.kernel + self.out
        top[0].reshape(shape[:self.axis] + (self.channels * math.prod(self.kernel),) + self.out)

    def _pieces(self):
        """(kernel offset, output region, input slices) for every kernel offset."""
        for offsets in itertools.product(*(range(k) for k in self.kernel)):
            ranges = valid_ranges(offsets, self.x_shape[2:], self.out, self.pad, self.stride, self.dilation)
            if all(hi > lo for lo, hi, _ in ranges):
                yield (offsets, (Ellipsis,) + tuple(slice(lo, hi) for lo, hi, _ in ranges),
                       (Ellipsis,) + tuple(src for _, _, src in ranges))

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.x_shape)
        col = top[0].data.reshape(self.col_shape)
        col[...] = 0
        for offsets, region, source in self._pieces():
            col[(slice(None), slice(None)) + offsets][region] = x[source]

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].diff.reshape(self.x_shape)
        col = top[0].diff.reshape(self.col_shape)
        dx[...] = 0
        for offsets, region, source in self._pieces():
            dx[source] += col[(slice(None), slice(None)) + offsets][region]


@register("SPP")
class SPP(Layer):
    """Built on the Pooling layer (one per level, rebuilt when the input size changes)."""
    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.spp_param
        if p.pyramid_height < 1:
            self.fail("spp_param.pyramid_height must be given and positive", PrototxtError)
        self.height = int(p.pyramid_height)
        self.method = p.PoolMethod.Name(p.pool)
        self.levels, self.for_shape = [], None

    def _level_param(self, level, h, w):
        bins = 2 ** level
        kernel = [math.ceil(size / bins) for size in (h, w)]
        pad = [(k * bins - size + 1) // 2 for k, size in zip(kernel, (h, w))]
        text = (f'name: "{self.name}_level{level}" type: "Pooling" pooling_param {{ pool: {self.method} '
                f'kernel_h: {kernel[0]} kernel_w: {kernel[1]} stride_h: {kernel[0]} stride_w: {kernel[1]} '
                f'pad_h: {pad[0]} pad_w: {pad[1]} }}')
        from ..proto import caffe_pb2
        return text_format.Parse(text, caffe_pb2.LayerParameter())

    def reshape(self, bottom, top):
        from . import create_layer
        shape = bottom[0].shape
        if len(shape) != 4:
            self.fail(f"input must have 4 axes (num, channels, height, width), got {shape}")
        if min(shape[2:]) < 1:
            self.fail(f"input {shape} has an empty spatial axis")
        if shape != self.for_shape:
            self.levels = []
            for level in range(self.height):
                pool = create_layer(self._level_param(level, *shape[2:]), phase=self.phase, dtype=self.dtype)
                pooled = Blob((), self.dtype, name=f"{self.name}_level{level}")
                try:
                    pool.setup(bottom, [pooled])
                except PrototxtError as exc:
                    self.fail(f"pyramid level {level} of input {shape}: {exc}", PrototxtError)
                self.levels.append((pool, pooled))
            self.for_shape = shape
        if self.height == 1:
            top[0].reshape(self.levels[0][1].shape)
        else:
            top[0].reshape((shape[0], sum(p.count_range(1) for _, p in self.levels)))

    def forward(self, bottom, top):
        start = 0
        for pool, pooled in self.levels:
            pool.forward(bottom, [pooled])
            width = pooled.count_range(1)
            top[0].data.reshape(top[0].shape[0], -1)[:, start:start + width] = pooled.data.reshape(-1, width)
            start += width

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp = backend.xp_of(top[0].diff)
        scratch = Blob((), self.dtype)
        total = xp.zeros_like(bottom[0].diff)
        start = 0
        for pool, pooled in self.levels:
            width = pooled.count_range(1)
            pooled.diff[...] = top[0].diff.reshape(top[0].shape[0], -1)[:, start:start + width].reshape(pooled.shape)
            start += width
            scratch.data, scratch.diff = bottom[0].data, xp.empty_like(total)
            pool.backward([pooled], [True], [scratch])
            total += scratch.diff
        bottom[0].diff[...] = total

    def flops(self, bottom, top):
        return sum(pool.flops(bottom, [pooled]) for pool, pooled in self.levels)
