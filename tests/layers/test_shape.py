import numpy as np
import pytest

from firecaffe.errors import FirecaffeError
from firecaffe.engine.testing import check_gradient, make_layer


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("param, axis", [("", 1), ("concat_param { axis: 0 }", 0),
                                         ("concat_param { concat_dim: 0 }", 0),
                                         ("concat_param { axis: -1 }", 2)])
def test_concat_forward_and_gradient(param, axis):
    shapes = [[2, 3, 2], [2, 3, 2], [2, 3, 2]]
    for i, s in enumerate(shapes):
        s[axis] = i + 1
    xs = [rand(*s, seed=i) for i, s in enumerate(shapes)]
    layer, bottom, top = make_layer(f'type: "Concat" {param}', xs)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, np.concatenate(xs, axis=axis))
    check_gradient(layer, bottom, top)


def test_concat_rejects_mismatched_shapes():
    with pytest.raises(FirecaffeError, match=r"'test'.*\(2, 4\).*\(2, 3\)"):
        make_layer('type: "Concat" concat_param { axis: 0 }', [rand(2, 3), rand(2, 4)])


@pytest.mark.parametrize("param, axis, sizes", [
    ("slice_param { axis: 0 slice_point: 1 slice_point: 3 }", 0, [1, 2, 1]),
    ("slice_param { axis: 1 }", 1, [2, 2, 2]),
    ("slice_param { slice_dim: 1 slice_point: 5 }", 1, [5, 1]),
])
def test_slice_forward_and_gradient(param, axis, sizes):
    x = rand(4, 6, 2)
    layer, bottom, top = make_layer(f'type: "Slice" {param}', [x], num_top=len(sizes))
    layer.forward(bottom, top)
    pieces = np.split(x, np.cumsum(sizes)[:-1], axis=axis)
    for t, piece in zip(top, pieces):
        np.testing.assert_array_equal(t.data, piece)
    check_gradient(layer, bottom, top)


def test_slice_then_concat_round_trips():
    x = rand(2, 5, 3)
    s, bottom, tops = make_layer('type: "Slice" slice_param { slice_point: 2 }', [x], num_top=2)
    s.forward(bottom, tops)
    c, cb, ct = make_layer('type: "Concat"', [t.data for t in tops])
    c.forward(cb, ct)
    np.testing.assert_array_equal(ct[0].data, x)


@pytest.mark.parametrize("param, num_top, message", [
    ("slice_param { slice_point: 2 slice_point: 9 }", 3, r"slice points \[2, 9\]"),
    ("slice_param { slice_point: 3 slice_point: 2 }", 3, "increase strictly"),
    ("slice_param { slice_point: 2 }", 3, "1 slice_point"),
    ("", 4, "into 4 equal slices"),
])
def test_slice_errors_name_the_layer(param, num_top, message):
    with pytest.raises(FirecaffeError, match=f"layer 'test' \\(Slice\\).*{message}"):
        make_layer(f'type: "Slice" {param}', [rand(2, 6)], num_top=num_top)


def test_split_copies_bottom_and_sums_three_top_diffs():
    x = rand(2, 3)
    layer, bottom, top = make_layer('type: "Split"', [x], num_top=3)
    layer.forward(bottom, top)
    for t in top:
        np.testing.assert_array_equal(t.data, x)
        assert t.data is not bottom[0].data
    for k, t in enumerate(top):
        t.diff[...] = k + 1
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, 6.0)
    check_gradient(layer, bottom, top)


def test_flatten_shapes_and_gradient():
    x = rand(2, 3, 4, 5)
    layer, bottom, top = make_layer('type: "Flatten"', [x])
    assert top[0].shape == (2, 60)
    layer, bottom, top = make_layer('type: "Flatten" flatten_param { axis: 1 end_axis: 2 }', [x])
    assert top[0].shape == (2, 12, 5)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, x.reshape(2, 12, 5))
    layer, bottom, top = make_layer('type: "Flatten"', [rand(2, 3, 2)])
    check_gradient(layer, bottom, top)


# Examples from the semantics of Caffe's ReshapeParameter documentation.
@pytest.mark.parametrize("param, in_shape, out_shape", [
    ("shape { dim: 0 dim: -1 }", (2, 3, 4, 5), (2, 60)),
    ("shape { dim: 0 dim: 2 dim: 3 dim: 2 dim: 0 }", (2, 12, 5), None),  # 0 past end: error
    ("shape { dim: 0 dim: 0 dim: 2 dim: -1 }", (2, 3, 8, 1), (2, 3, 2, 4)),
    ("shape { dim: -1 }", (2, 3, 4), (24,)),
    ("shape { dim: 1 dim: 1 } axis: 1 num_axes: 0", (2, 3), (2, 1, 1, 3)),
    ("shape { dim: 1 dim: 1 } axis: 0 num_axes: 0", (2, 3), (1, 1, 2, 3)),
    ("shape { dim: 1 dim: 1 } axis: -1 num_axes: 0", (2, 3), (2, 3, 1, 1)),
    ("shape { dim: 2 dim: -1 } axis: 1 num_axes: 2", (5, 4, 6, 7), (5, 2, 12, 7)),
    ("shape { dim: 6 } axis: -4 num_axes: 2", (5, 2, 3, 7), (5, 6, 7)),  # -1 is past the end
])
def test_reshape_examples(param, in_shape, out_shape):
    x = rand(*in_shape)
    text = f'type: "Reshape" reshape_param {{ {param} }}'
    if out_shape is None:
        with pytest.raises(FirecaffeError, match="'test'.*no axis 4 to copy"):
            make_layer(text, [x])
        return
    layer, bottom, top = make_layer(text, [x])
    assert top[0].shape == out_shape
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, x.reshape(out_shape))


def test_reshape_gradient_with_copy_and_infer():
    layer, bottom, top = make_layer('type: "Reshape" reshape_param { shape { dim: 0 dim: -1 dim: 2 } }',
                                    [rand(2, 3, 2, 2)])
    assert top[0].shape == (2, 6, 2)
    check_gradient(layer, bottom, top)


def test_reshape_count_mismatch_names_the_layer_and_both_shapes():
    with pytest.raises(FirecaffeError, match=r"layer 'test' \(Reshape\).*\(2, 7\).*\(2, 3, 4\)"):
        make_layer('type: "Reshape" reshape_param { shape { dim: 2 dim: 7 } }', [rand(2, 3, 4)])
    with pytest.raises(FirecaffeError, match="'test'.*infer"):
        make_layer('type: "Reshape" reshape_param { shape { dim: 5 dim: -1 } }', [rand(2, 3, 4)])
    with pytest.raises(FirecaffeError, match="more than one -1"):
        make_layer('type: "Reshape" reshape_param { shape { dim: -1 dim: -1 } }', [rand(2, 3)])


def test_silence_has_no_tops_and_zeroes_bottom_diffs():
    layer, bottom, top = make_layer('type: "Silence"', [rand(2, 3), rand(4)], num_top=0)
    for b in bottom:
        b.diff[...] = 7.0
    layer.forward(bottom, top)
    layer.backward(top, [True, True], bottom)
    for b in bottom:
        np.testing.assert_array_equal(b.diff, 0.0)


@pytest.mark.parametrize("axis", [0, 1, 3])
def test_concat_slice_split_large_threaded(monkeypatch, axis):
    """Arrays past the threading threshold: Concat writes each bottom into its
    slice of the top, backward copies into the bottoms' own diff arrays; Slice
    and Split agree with NumPy; nothing is rebound to views."""
    from firecaffe.ops import _threads, shape
    monkeypatch.setattr(_threads, "ELTWISE_THREADS", 2)
    monkeypatch.setattr(_threads, "CHUNK", 1000)
    monkeypatch.setattr(_threads, "MIN_PARALLEL", 2000)
    monkeypatch.setattr(shape, "_MIN_PARALLEL_BYTES", 1000)
    shapes = [[5, 16, 33, 41], [5, 16, 33, 41], [5, 16, 33, 41]]
    for i, s in enumerate(shapes):
        s[axis] = 3 + 4 * i
    xs = [rand(*s, seed=i).astype(np.float32) for i, s in enumerate(shapes)]
    layer, bottom, top = make_layer(f'type: "Concat" concat_param {{ axis: {axis} }}', xs,
                                    dtype=np.float32)
    diffs = [b.diff for b in bottom]
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, np.concatenate(xs, axis=axis))
    dy = rand(*top[0].shape, seed=9).astype(np.float32)
    top[0].diff[...] = dy
    layer.backward(top, [True, False, True], bottom)
    parts = np.split(dy, np.cumsum([x.shape[axis] for x in xs])[:-1], axis=axis)
    for b, d, part, down in zip(bottom, diffs, parts, [True, False, True]):
        assert b.diff is d and not np.shares_memory(b.diff, top[0].diff)
        np.testing.assert_array_equal(b.diff, part if down else 0)

    points = " ".join(f"slice_point: {p}" for p in np.cumsum([x.shape[axis] for x in xs])[:-1])
    sl, sb, st = make_layer(f'type: "Slice" slice_param {{ axis: {axis} {points} }}',
                            [top[0].data], dtype=np.float32, num_top=3)
    sl.forward(sb, st)
    for t, x in zip(st, xs):
        np.testing.assert_array_equal(t.data, x)
        t.diff[...] = x * 2
    sl.backward(st, [True], sb)
    np.testing.assert_array_equal(sb[0].diff, top[0].data * 2)

    sp, pb, pt = make_layer('type: "Split"', [xs[0]], dtype=np.float32, num_top=3)
    sp.forward(pb, pt)
    for k, t in enumerate(pt):
        np.testing.assert_array_equal(t.data, xs[0])
        t.diff[...] = xs[0] * (k + 1)
    sp.backward(pt, [True], pb)
    np.testing.assert_array_equal(pb[0].diff, pt[0].diff + pt[1].diff + pt[2].diff)
