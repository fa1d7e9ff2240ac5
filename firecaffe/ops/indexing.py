"""Layers that pick by index: Embed, BatchReindex, Filter, ArgMax, and
Parameter (a learnable blob as a top).

Caffe types and parameters:
  Embed         embed_param { num_output, input_dim, bias_term (true), weight_filler, bias_filler }
                bottom: indices (any shape, integers in floats, truncated); top: shape + (num_output,)
                weights (input_dim, num_output) (InnerProduct's transposed), bias (num_output,)
  BatchReindex  bottoms data (N, ...), indices (M) in [0, N); top (M, ...) = data[indices]
  Filter        bottoms k blobs (N, ...) and a selector (N[, 1, ...]); k tops with the rows whose
                selector is non-zero. As in Caffe, the tops have all N rows after setup and
                only the selected rows after a forward.
  ArgMax        argmax_param { out_max_val (false), top_k (1), axis }: the top_k indices (or values
                with axis and out_max_val) along axis; without axis over each sample, top
                (N, 1 or 2, top_k[, 1 ...]). Ties go to the larger index (Caffe sorts (value, index)
                pairs in descending order). No backward.
  Parameter     parameter_param { shape }: no bottom; the top is the layer's blob (data and diff).

Index bottoms take no gradient; asking for one is an error, and force_backward leaves them out.
"""
import numpy as np

from ..core import backend
from ..errors import DataError, PrototxtError
from . import register
from .base import Layer


def _index_add(target, index, values):
    """target[index] += values, adding repeated indices (ufunc.at: NumPy, CuPy >= 13;
    cupyx.scatter_add on older CuPy)."""
    xp = backend.xp_of(target)
    if hasattr(xp.add, "at"):
        xp.add.at(target, index, values)
    else:
        import cupyx
        cupyx.scatter_add(target, index, values)


def _indices(layer, blob, limit, what):
    """The values of ``blob`` truncated to integers; a DataError names the first outside [0, limit)."""
    xp = backend.xp_of(blob.data)
    index = blob.data.reshape(-1).astype(np.int64)
    bad = (index < 0) | (index >= limit)
    if bool(bad.any()):
        k = int(xp.flatnonzero(bad)[0])
        layer.fail(f"{what} {float(blob.data.reshape(-1)[k]):g} at position {k} is outside [0, {limit})",
                   DataError)
    return index


class _IndexedBottom(Layer):
    """A layer whose bottom ``index_bottom`` holds indices: no gradient there."""
    index_bottom = 0

    def _index_position(self, bottom_count):
        return self.index_bottom % bottom_count

    def allow_force_backward(self, bottom_index):
        return bottom_index != self.index_bottom

    def refuse_index_gradient(self, propagate_down):
        i = self._index_position(len(propagate_down))
        if propagate_down[i]:
            self.fail(f"cannot backpropagate to bottom {i} (indices)", PrototxtError)


@register("Embed")
class Embed(_IndexedBottom):
    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.embed_param
        self.num_output, self.input_dim = int(p.num_output), int(p.input_dim)
        if self.num_output < 1 or self.input_dim < 1:
            self.fail("embed_param needs num_output > 0 and input_dim > 0", PrototxtError)
        self.make_blob((self.input_dim, self.num_output), p.weight_filler if p.HasField("weight_filler") else None)
        self.bias_term = bool(p.bias_term)
        if self.bias_term:
            self.make_blob((self.num_output,), p.bias_filler if p.HasField("bias_filler") else None)

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape + (self.num_output,))

    def forward(self, bottom, top):
        index = _indices(self, bottom[0], self.input_dim, "index")
        y = self.blobs[0].data[index]
        if self.bias_term:
            y += self.blobs[1].data
        top[0].data[...] = y.reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        self.refuse_index_gradient(propagate_down)
        index = bottom[0].data.reshape(-1).astype(np.int64)
        dy = top[0].diff.reshape(-1, self.num_output)
        _index_add(self.blobs[0].diff, index, dy)
        if self.bias_term:
            self.blobs[1].diff += dy.sum(axis=0)

    def flops(self, bottom, top):
        return top[0].count if self.bias_term else 0


@register("BatchReindex")
class BatchReindex(_IndexedBottom):
    exact_num_bottom = 2
    exact_num_top = 1
    index_bottom = 1

    def reshape(self, bottom, top):
        if bottom[1].ndim != 1:
            self.fail(f"the index bottom must have one axis, got {bottom[1].shape}")
        if bottom[0].ndim < 1:
            self.fail("the data bottom must have a batch axis")
        top[0].reshape(bottom[1].shape + bottom[0].shape[1:])

    def forward(self, bottom, top):
        self.index = _indices(self, bottom[1], bottom[0].shape[0], "index")
        top[0].data[...] = bottom[0].data[self.index]

    def backward(self, top, propagate_down, bottom):
        self.refuse_index_gradient(propagate_down)
        if propagate_down[0]:
            bottom[0].diff[...] = 0
            _index_add(bottom[0].diff, self.index, top[0].diff)


@register("Filter")
class Filter(_IndexedBottom):
    min_num_bottom = 2
    min_num_top = 1
    index_bottom = -1

    def layer_setup(self, bottom, top):
        if len(top) != len(bottom) - 1:
            self.fail(f"needs one top per filtered bottom: {len(bottom) - 1} bottom(s) besides the "
                      f"selector, {len(top)} top(s)")
        self.first_reshape = True

    def allow_force_backward(self, bottom_index):
        return bottom_index != self.num_bottoms - 1

    def reshape(self, bottom, top):
        self.num_bottoms = len(bottom)
        selector = bottom[-1]
        if selector.ndim < 1 or any(d != 1 for d in selector.shape[1:]):
            self.fail(f"the selector must be (N) or (N, 1, ...), got {selector.shape}")
        for i, b in enumerate(bottom[:-1]):
            if b.ndim < 1 or b.shape[0] != selector.shape[0]:
                self.fail(f"bottom {i} {b.shape} must have the selector's first dimension {selector.shape[0]}")
        xp = backend.xp_of(selector.data)
        self.selected = xp.flatnonzero(selector.data.reshape(-1))
        rows = selector.shape[0] if self.first_reshape else int(self.selected.size)
        self.first_reshape = False
        for t, b in zip(top, bottom):
            t.reshape((rows,) + b.shape[1:])

    def forward(self, bottom, top):
        self.reshape(bottom, top)              # the top size follows the selector
        for t, b in zip(top, bottom):
            t.data[...] = b.data[self.selected]

    def backward(self, top, propagate_down, bottom):
        self.refuse_index_gradient(propagate_down)
        for t, b, down in zip(top, bottom, propagate_down):
            if down:
                b.diff[...] = 0
                b.diff[self.selected] = t.diff


@register("ArgMax")
class ArgMax(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.argmax_param
        self.out_max_val, self.top_k = bool(p.out_max_val), int(p.top_k)
        self.axis = None
        if self.top_k < 1:
            self.fail("top_k must be at least 1", PrototxtError)
        if p.HasField("axis"):
            try:
                self.axis = bottom[0].canonical_axis(p.axis)
            except ValueError as exc:
                self.fail(str(exc), PrototxtError)

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if self.axis is not None:
            dim = shape[self.axis]
            out = shape[:self.axis] + (self.top_k,) + shape[self.axis + 1:]
        else:
            dim = bottom[0].count_range(1)
            out = [1] * max(len(shape), 3)
            out[0], out[1], out[2] = shape[0], 2 if self.out_max_val else 1, self.top_k
        if self.top_k > dim:
            self.fail(f"top_k ({self.top_k}) must not exceed the {dim} values it chooses from (input {shape})")
        top[0].reshape(tuple(out))

    def forward(self, bottom, top):
        x = bottom[0].data
        xp = backend.xp_of(x)
        if self.axis is None:
            values = x.reshape(x.shape[0], -1, 1)
        else:
            values = x.reshape(bottom[0].count_range(0, self.axis), x.shape[self.axis], -1)
        dim = values.shape[1]
        # A stable sort of the negated values along the reversed axis puts equal
        # values in descending index order, as Caffe's sort of (value, index) pairs
        # (CuPy's argsort is always stable and takes no kind).
        reverse = -values[:, ::-1, :]
        order = xp.argsort(reverse, axis=1, kind="stable") if xp is np else xp.argsort(reverse, axis=1)
        index = (dim - 1 - order[:, :self.top_k, :])
        picked = xp.take_along_axis(values, index, axis=1)
        if self.axis is None:
            result = xp.stack([index[:, :, 0], picked[:, :, 0]], axis=1) if self.out_max_val else index[:, None, :, 0]
        else:
            result = picked if self.out_max_val else index
        top[0].data[...] = result.reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            self.fail("has no backward pass; set propagate_down: false or do not use force_backward",
                      PrototxtError)

    def allow_force_backward(self, bottom_index):
        return False


@register("Parameter")
class Parameter(Layer):
    """The top shares the blob's arrays, rebound on every forward because the
    net moves learnable blobs into its flat arenas after setup."""
    exact_num_bottom = 0
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        self.make_blob(tuple(self.param.parameter_param.shape.dim))

    def reshape(self, bottom, top):
        top[0].reshape(self.blobs[0].shape)

    def forward(self, bottom, top):
        top[0].data, top[0].diff = self.blobs[0].data, self.blobs[0].diff

    def backward(self, top, propagate_down, bottom):
        """The gradient already sits in the blob's diff (the top shares it)."""
