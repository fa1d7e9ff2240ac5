"""Layers that move data without arithmetic: Concat, Slice, Split, Flatten,
Reshape, Silence.

Caffe types and parameters:
  Concat   concat_param { axis (1) | concat_dim (legacy, >= 0) }: join bottoms along axis
  Slice    slice_param { axis (1) | slice_dim (legacy); slice_point* }: cut the bottom
           along axis at the slice points (one fewer than the tops), or into equal
           parts, one per top, when no points are given
  Split    (none): copy the bottom to every top; backward sums the top diffs (the
           net inserts Split layers wherever a blob feeds several layers)
  Flatten  flatten_param { axis (1), end_axis (-1) }: merge axes axis..end_axis
  Reshape  reshape_param { shape { dim* }, axis (0), num_axes (-1) }: replace the
           axes [axis, axis + num_axes) with shape; a 0 copies the bottom's dim at
           that position, a single -1 is inferred from the count
  Silence  (no tops): swallow blobs; backward writes zero bottom diffs

Caffe shares memory between Flatten/Reshape/Split tops and bottoms; here tops
are copies, so an in-place layer downstream can never clobber another reader.
"""
import numpy as np

from ..errors import PrototxtError
from . import register
from .base import Layer
from ._threads import CHUNK, elementwise, run_parts
from .neuron import relu_grad_piece

_MIN_PARALLEL_BYTES = 1 << 20


def _copy_pairs(pairs, axis):
    """``np.copyto(dst, src)`` for each (dst, src) pair of same-shaped arrays;
    NumPy arrays of 1 MiB or more, cut along a leading axis before ``axis``
    (axis > 0), are shared out over threads by ranges of that first axis."""
    pairs = list(pairs)
    big = sum(d.nbytes for d, _ in pairs)
    numpy = all(isinstance(d, np.ndarray) and isinstance(v, np.ndarray) for d, v in pairs)
    n = pairs[0][0].shape[0] if pairs and axis > 0 and pairs[0][0].ndim else 0
    if not numpy or big < _MIN_PARALLEL_BYTES or n < 2:
        for d, v in pairs:
            d[...] = v
        return

    def part(lo, hi):
        for d, v in pairs:
            np.copyto(d[lo:hi], v[lo:hi])
    run_parts(part, n, min_n=2)


def _canonical(layer, blob, axis):
    try:
        return blob.canonical_axis(axis)
    except ValueError as exc:
        layer.fail(str(exc))


def _legacy_axis(layer, bottom, param, legacy_field):
    if param.HasField(legacy_field):
        if param.HasField("axis"):
            layer.fail(f"set either axis or the legacy {legacy_field}, not both")
        return _canonical(layer, bottom, getattr(param, legacy_field))
    return _canonical(layer, bottom, param.axis)


@register("Concat")
class Concat(Layer):
    min_num_bottom = 1
    exact_num_top = 1

    def reshape(self, bottom, top):
        self.axis = _legacy_axis(self, bottom[0], self.param.concat_param, "concat_dim")
        first = tuple(bottom[0].shape)
        shape = list(first)
        for i, b in enumerate(bottom[1:], 1):
            other = tuple(b.shape)
            if len(other) != len(first) or any(
                    a != c for j, (a, c) in enumerate(zip(first, other)) if j != self.axis):
                self.fail(f"bottom[{i}] shape {other} does not match bottom[0] shape {first} "
                          f"on the axes other than the concat axis {self.axis}")
            shape[self.axis] += other[self.axis]
        top[0].reshape(shape)
        self.sizes = [b.shape[self.axis] for b in bottom]

    def _slices(self):
        start = 0
        for size in self.sizes:
            yield (slice(None),) * self.axis + (slice(start, start + size),)
            start += size

    def forward(self, bottom, top):
        # each bottom straight into its slice of the top: no temporary
        _copy_pairs(((top[0].data[index], b.data) for b, index in zip(bottom, self._slices())),
                    self.axis)

    def backward(self, top, propagate_down, bottom):
        # copies into the bottoms' own diff arrays (a view of the top diff would
        # be overwritten by the next backward and break blob ownership)
        _copy_pairs(((b.diff, top[0].diff[index])
                     for b, down, index in zip(bottom, propagate_down, self._slices()) if down),
                    self.axis)

    def backward_relu(self, top, propagate_down, bottom, masked):
        """Backward with the backward of the in-place ReLUs (slope 0) on the bottoms numbered in
        ``masked`` done as well (engine/fusion.py): their diffs get the top diff's slice times
        (bottom > 0), what the copy then the ReLU layer's backward leave there, in one pass instead
        of two. False (nothing done) for arrays that are not C-contiguous NumPy ones."""
        arrays = [top[0].diff] + [a for b in bottom for a in (b.diff, b.data)]
        if not all(isinstance(a, np.ndarray) and a.flags.c_contiguous for a in arrays):
            return False
        if top[0].count == 0:
            self.backward(top, propagate_down, bottom)
            return True
        copies, products = [], []
        outer = int(np.prod(top[0].shape[:self.axis], dtype=np.int64))
        rows = top[0].diff.reshape(outer, -1)
        start = 0
        for k, (b, down, index) in enumerate(zip(bottom, propagate_down, self._slices())):
            width = b.count // outer
            if down and k in masked:
                products.append((b.diff.reshape(outer, -1), rows[:, start:start + width], b.data.reshape(outer, -1)))
            elif down:
                copies.append((b.diff, top[0].diff[index]))
            start += width
        if copies:
            _copy_pairs(copies, self.axis)
        for dx, dy, x in products:
            for n in range(outer):
                elementwise(relu_grad_piece, x[n], dy[n], dx[n], chunk=CHUNK)
        return True


@register("Slice")
class Slice(Layer):
    exact_num_bottom = 1
    min_num_top = 1

    def reshape(self, bottom, top):
        p = self.param.slice_param
        self.axis = _legacy_axis(self, bottom[0], p, "slice_dim")
        shape = tuple(bottom[0].shape)
        length = shape[self.axis]
        points = list(p.slice_point)
        if points:
            if len(points) != len(top) - 1:
                self.fail(f"{len(points)} slice_point value(s) for {len(top)} tops; "
                          f"give exactly {len(top) - 1}")
            bounds = [0] + points + [length]
            if any(b <= a for a, b in zip(bounds, bounds[1:])):
                self.fail(f"slice points {points} must increase strictly and lie inside "
                          f"(0, {length}) for axis {self.axis} of bottom shape {shape}")
        else:
            if length % len(top):
                self.fail(f"cannot cut axis {self.axis} of size {length} (bottom shape {shape}) "
                          f"into {len(top)} equal slices")
            step = length // len(top)
            bounds = [i * step for i in range(len(top) + 1)]
        self.bounds = bounds
        for t, a, b in zip(top, bounds, bounds[1:]):
            t.reshape(shape[:self.axis] + (b - a,) + shape[self.axis + 1:])

    def _index(self, i):
        return (slice(None),) * self.axis + (slice(self.bounds[i], self.bounds[i + 1]),)

    def forward(self, bottom, top):
        _copy_pairs(((t.data, bottom[0].data[self._index(i)]) for i, t in enumerate(top)), self.axis)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            _copy_pairs(((bottom[0].diff[self._index(i)], t.diff) for i, t in enumerate(top)),
                        self.axis)


@register("Split")
class Split(Layer):
    exact_num_bottom = 1
    min_num_top = 1

    def reshape(self, bottom, top):
        for i, t in enumerate(top):
            if t is bottom[0]:
                self.fail(f"top[{i}] cannot be the bottom blob (Split does not work in place)")
            t.reshape_like(bottom[0])

    def forward(self, bottom, top):
        x = bottom[0].data
        _copy_pairs(((t.data.reshape(-1), x.reshape(-1)) for t in top), 1)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        diff = bottom[0].diff
        arrays = [diff] + [t.diff for t in top]
        if all(isinstance(a, np.ndarray) and a.flags.c_contiguous for a in arrays):
            if len(top) == 1:
                elementwise(lambda out, a: np.copyto(out, a), *arrays)
            else:
                def part(out, a, b, *rest):
                    np.add(a, b, out=out)
                    for r in rest:
                        out += r
                elementwise(part, *arrays)
            return
        diff[...] = top[0].diff
        for t in top[1:]:
            diff += t.diff


@register("Flatten")
class Flatten(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def reshape(self, bottom, top):
        p = self.param.flatten_param
        shape = tuple(bottom[0].shape)
        start = _canonical(self, bottom[0], p.axis)
        end = _canonical(self, bottom[0], p.end_axis)
        if end < start:
            self.fail(f"end_axis {p.end_axis} comes before axis {p.axis} for bottom shape {shape}")
        top[0].reshape(shape[:start] + (bottom[0].count_range(start, end + 1),) + shape[end + 1:])

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data.reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff.reshape(bottom[0].shape)


@register("Reshape")
class Reshape(Flatten):
    def layer_setup(self, bottom, top):
        dims = [int(d) for d in self.param.reshape_param.shape.dim]
        if dims.count(-1) > 1:
            self.fail(f"reshape_param.shape {dims} has more than one -1 (inferred) dimension",
                      error=PrototxtError)
        if any(d < -1 for d in dims):
            self.fail(f"reshape_param.shape {dims} has a dimension below -1",
                      error=PrototxtError)
        self.dims = dims

    def reshape(self, bottom, top):
        p = self.param.reshape_param
        shape = tuple(bottom[0].shape)
        ndim = len(shape)
        start = p.axis if p.axis >= 0 else ndim + p.axis + 1
        if not 0 <= start <= ndim:
            self.fail(f"reshape_param.axis {p.axis} is out of range for bottom shape {shape}")
        if p.num_axes < -1:
            self.fail(f"reshape_param.num_axes must be >= -1, got {p.num_axes}")
        end = ndim if p.num_axes == -1 else start + p.num_axes
        if end > ndim:
            self.fail(f"reshape_param axis {p.axis} + num_axes {p.num_axes} run past "
                      f"bottom shape {shape}")
        new = list(self.dims)
        for i, d in enumerate(new):
            if d == 0:
                if start + i >= ndim:
                    self.fail(f"shape dim {i} is 0 (copy) but bottom shape {shape} has no "
                              f"axis {start + i} to copy")
                new[i] = shape[start + i]
        if -1 in new:
            known = bottom[0].count_range(0, start) * bottom[0].count_range(end)
            for d in new:
                if d != -1:
                    known *= d
            if known == 0 or bottom[0].count % known:
                self.fail(f"cannot infer the -1 dimension of shape {self.dims}: bottom shape "
                          f"{shape} has {bottom[0].count} values, not a multiple of {known}")
            new[new.index(-1)] = bottom[0].count // known
        out = shape[:start] + tuple(new) + shape[end:]
        count = 1
        for d in out:
            count *= d
        if count != bottom[0].count:
            self.fail(f"output shape {out} ({count} values) does not match bottom shape "
                      f"{shape} ({bottom[0].count} values)")
        top[0].reshape(out)


@register("Silence")
class Silence(Layer):
    min_num_bottom = 1
    exact_num_top = 0

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        for b, down in zip(bottom, propagate_down):
            if down:
                b.diff[...] = 0

