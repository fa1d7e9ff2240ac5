"""pycaffe's coord_map: how coordinates of one NetSpec top map onto another's, to
place Crop layers in fully convolutional nets (FCN's score/upscore alignment).

A map is (axis, a, b): a position x on the first top lands at a * x + b on the
second; ``axis`` is the first spatial axis it applies to (None: any).
Convolution and Pooling shrink by their stride and shift by their padding,
Deconvolution grows, element-wise layers pass positions through, Crop shifts
by its offset.
"""
import numpy as np

from .net_spec import layers as L

PASS_THROUGH_LAYERS = {"AbsVal", "BatchNorm", "Bias", "BNLL", "Dropout", "Eltwise", "ELU", "Log", "LRN",
                       "Exp", "MVN", "Power", "ReLU", "PReLU", "Scale", "Sigmoid", "Split", "TanH",
                       "Threshold"}


class UndefinedMapException(Exception):
    """A layer whose coordinate map is not defined (InnerProduct, Reshape, ...)."""


class AxisMismatchException(Exception):
    """Two maps that apply to different axes cannot be composed."""


def conv_params(fn):
    """(axis, stride, effective kernel size, pad) of a Convolution/Pooling/Deconvolution."""
    key = "pooling_param" if fn.type_name == "Pooling" else "convolution_param"
    params = fn.params.get(key, fn.params)
    legacy = {"pad_h", "pad_w", "kernel_h", "kernel_w", "stride_h", "stride_w"} & set(params)
    if legacy:
        raise UndefinedMapException(f"{fn.type_name}: coord_map does not support {sorted(legacy)}")
    kernel = np.array(params["kernel_size"], ndmin=1)
    dilation = np.array(params.get("dilation", 1), ndmin=1)
    return (params.get("axis", 1), np.array(params.get("stride", 1), ndmin=1),
            (kernel - 1) * dilation + 1, np.array(params.get("pad", 0), ndmin=1))


def crop_params(fn):
    params = fn.params.get("crop_param", fn.params)
    return params.get("axis", 2), np.array(params.get("offset", 0), ndmin=1)


def coord_map(fn):
    """The map from layer ``fn``'s (first) bottom to its top."""
    if fn.type_name in ("Convolution", "Pooling", "Im2col"):
        axis, stride, kernel, pad = conv_params(fn)
        return axis, 1 / stride, (pad - (kernel - 1) / 2) / stride
    if fn.type_name == "Deconvolution":
        axis, stride, kernel, pad = conv_params(fn)
        return axis, stride, (kernel - 1) / 2 - pad
    if fn.type_name in PASS_THROUGH_LAYERS:
        return None, 1, 0
    if fn.type_name == "Crop":
        axis, offset = crop_params(fn)
        return axis - 1, 1, -offset
    raise UndefinedMapException(f"no coordinate map for a {fn.type_name} layer")


def then(first, second):
    """The map ``first`` followed by ``second``."""
    ax1, a1, b1 = first
    ax2, a2, b2 = second
    if ax1 is not None and ax2 is not None and ax1 != ax2:
        raise AxisMismatchException(f"maps on axes {ax1} and {ax2} do not compose")
    return (ax1 if ax1 is not None else ax2), a2 * a1, a2 * b1 + b2


def inverse(cmap):
    axis, a, b = cmap
    return axis, 1 / a, -b / a


def _ancestor_maps(top):
    """{ancestor top: map from the ancestor to ``top``}, through layers with maps."""
    maps = {top: (None, 1, 0)}
    frontier = [top]
    while frontier:
        current = frontier.pop(0)            # breadth first: nearest ancestors first
        bottoms = current.fn.inputs[:1] if current.fn.type_name == "Crop" else current.fn.inputs
        try:
            step = coord_map(current.fn)
        except UndefinedMapException:
            continue
        for bottom in bottoms:
            if bottom not in maps:
                maps[bottom] = then(step, maps[current])
                frontier.append(bottom)
    return maps


def coord_map_from_to(top_from, top_to):
    """The map from ``top_from``'s coordinates to ``top_to``'s, through their nearest
    common ancestor."""
    from_maps, to_maps = _ancestor_maps(top_from), _ancestor_maps(top_to)
    for ancestor, to_map in to_maps.items():          # nearest to top_to first
        if ancestor in from_maps:
            return then(inverse(from_maps[ancestor]), to_map)
    raise RuntimeError("the two tops have no common ancestor with defined coordinate maps")


def crop(top_from, top_to):
    """A Crop layer cutting ``top_from`` to ``top_to``'s size at the offset that aligns them."""
    axis, a, b = coord_map_from_to(top_from, top_to)
    # AssertionError, as pycaffe's checks (its tests expect that class); raised, not asserted,
    # so that python -O keeps them
    if not np.all(np.asarray(a) == 1):
        raise AssertionError(f"scale mismatch on crop (a = {a})")
    if not np.all(np.asarray(b) <= 0):
        raise AssertionError(f"cannot crop a negative offset (b = {b})")
    if not np.all(np.round(b) == b):
        raise AssertionError(f"cannot crop a non-integer offset (b = {b})")
    offset = [int(v) for v in -np.round(np.asarray(b, dtype=float).ravel())]
    return L.Crop(top_from, top_to, crop_param=dict(axis=axis + 1, offset=offset))
