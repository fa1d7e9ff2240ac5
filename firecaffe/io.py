"""pycaffe's caffe.io: images in and out of a net's input layout, and conversions
between arrays and BlobProto / Datum messages.

Images are H x W x K float arrays (RGB, values in [0, 1] from load_image); a net
wants K x H x W, often BGR, in [0, 255], mean-subtracted: Transformer does that
(preprocess) and undoes it (deprocess).
"""
import numpy as np

from .errors import FirecaffeError
from .proto import caffe_pb2


# --- arrays and protobuf messages ---------------------------------------------------
def blobproto_to_array(blob, return_diff=False):
    """A BlobProto's data (or diff) as an array of its shape (legacy 4-D fields too)."""
    values = blob.diff if return_diff else blob.data
    if blob.HasField("num") or blob.HasField("channels") or blob.HasField("height") or blob.HasField("width"):
        shape = (blob.num, blob.channels, blob.height, blob.width)
    else:
        shape = tuple(blob.shape.dim)
    return np.array(values).reshape(shape)


def array_to_blobproto(arr, diff=None):
    """A BlobProto with ``arr``'s shape and values (and ``diff`` if given)."""
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(arr.shape)
    blob.data.extend(np.asarray(arr, dtype=float).flat)
    if diff is not None:
        blob.diff.extend(np.asarray(diff, dtype=float).flat)
    return blob


def arraylist_to_blobprotovector_str(arraylist):
    vector = caffe_pb2.BlobProtoVector()
    vector.blobs.extend(array_to_blobproto(arr) for arr in arraylist)
    return vector.SerializeToString()


def blobprotovector_str_to_arraylist(text):
    vector = caffe_pb2.BlobProtoVector()
    vector.ParseFromString(text)
    return [blobproto_to_array(blob) for blob in vector.blobs]


def array_to_datum(arr, label=None):
    """A Datum from a C x H x W array: uint8 as bytes, anything else as float_data."""
    if arr.ndim != 3:
        raise ValueError(f"array_to_datum needs a 3-D (channels, height, width) array, got shape {arr.shape}")
    datum = caffe_pb2.Datum(channels=arr.shape[0], height=arr.shape[1], width=arr.shape[2])
    if arr.dtype == np.uint8:
        datum.data = arr.tobytes()
    else:
        datum.float_data.extend(arr.astype(float).flat)
    if label is not None:
        datum.label = int(label)
    return datum


def datum_to_array(datum):
    """A Datum's pixels as a C x H x W array (uint8 from bytes, float from float_data)."""
    shape = (datum.channels, datum.height, datum.width)
    if len(datum.data):
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape)
    return np.array(datum.float_data, dtype=float).reshape(shape)


# --- images ------------------------------------------------------------------------
def load_image(filename, color=True):
    """An image file as H x W x 3 (or x 1 with color=False) float32 in [0, 1], RGB."""
    from PIL import Image
    with Image.open(filename) as image:
        image = image.convert("RGB" if color else "L")
        img = np.asarray(image, dtype=np.float32) / 255.0
    return img if img.ndim == 3 else img[:, :, np.newaxis]


def resize_image(im, new_dims, interp_order=1):
    """Resize an H x W x K image to ``new_dims`` (H, W): bilinear (order 1) or nearest
    (order 0), sampling at pixel centres; returns float32."""
    im = np.asarray(im, dtype=np.float32)
    height, width = int(new_dims[0]), int(new_dims[1])
    if im.shape[:2] == (height, width):
        return im.copy()
    rows = _sample_positions(im.shape[0], height)
    cols = _sample_positions(im.shape[1], width)
    if interp_order == 0:
        r = np.clip(np.floor(rows + 0.5).astype(int), 0, im.shape[0] - 1)
        c = np.clip(np.floor(cols + 0.5).astype(int), 0, im.shape[1] - 1)
        return im[r][:, c]
    if interp_order != 1:
        raise ValueError(f"resize_image: interp_order {interp_order} not supported (0 or 1)")
    r0 = np.clip(np.floor(rows).astype(int), 0, im.shape[0] - 1)
    c0 = np.clip(np.floor(cols).astype(int), 0, im.shape[1] - 1)
    r1, c1 = np.minimum(r0 + 1, im.shape[0] - 1), np.minimum(c0 + 1, im.shape[1] - 1)
    fr = np.clip(rows - r0, 0, 1).astype(np.float32).reshape(-1, 1, *([1] * (im.ndim - 2)))
    fc = np.clip(cols - c0, 0, 1).astype(np.float32).reshape(1, -1, *([1] * (im.ndim - 2)))
    top = im[r0][:, c0] * (1 - fc) + im[r0][:, c1] * fc
    bottom = im[r1][:, c0] * (1 - fc) + im[r1][:, c1] * fc
    return (top * (1 - fr) + bottom * fr).astype(np.float32)


def _sample_positions(size, new_size):
    return np.clip((np.arange(new_size) + 0.5) * (size / new_size) - 0.5, 0, size - 1)


def oversample(images, crop_dims):
    """Ten crops of each H x W x K image: four corners and centre, then their mirrors."""
    crop_h, crop_w = int(crop_dims[0]), int(crop_dims[1])
    height, width = images[0].shape[:2]
    corners = [(0, 0), (0, width - crop_w), (height - crop_h, 0), (height - crop_h, width - crop_w),
               (int(height / 2.0 - crop_h / 2.0), int(width / 2.0 - crop_w / 2.0))]
    crops = np.empty((10 * len(images), crop_h, crop_w, images[0].shape[-1]), dtype=np.float32)
    k = 0
    for image in images:
        for top, left in corners:
            crops[k] = image[top:top + crop_h, left:left + crop_w, :]
            k += 1
        crops[k:k + 5] = crops[k - 5:k, :, ::-1, :]
        k += 5
    return crops


class Transformer:
    """Turns H x W x K images into a net's K x H x W input and back, per input name:
    resize, transpose, channel swap, raw scale, mean subtraction, input scale."""

    def __init__(self, inputs):
        self.inputs = {name: tuple(shape) for name, shape in inputs.items()}
        self.transpose, self.channel_swap = {}, {}
        self.raw_scale, self.mean, self.input_scale = {}, {}, {}

    def _check(self, name):
        if name not in self.inputs:
            raise FirecaffeError(f"Transformer: '{name}' is not one of the net inputs: {list(self.inputs)}")

    def preprocess(self, in_, data):
        """An H x W x K image as the input blob ``in_`` wants it (float32)."""
        self._check(in_)
        out = np.asarray(data).astype(np.float32, copy=True)
        size = self.inputs[in_][2:]
        if out.shape[:2] != tuple(size):
            out = resize_image(out, size)
        if in_ in self.transpose:
            out = out.transpose(self.transpose[in_])
        if in_ in self.channel_swap:
            out = out[list(self.channel_swap[in_]), :, :]
        if in_ in self.raw_scale:
            out *= self.raw_scale[in_]
        if in_ in self.mean:
            out -= self.mean[in_]
        if in_ in self.input_scale:
            out *= self.input_scale[in_]
        return out

    def deprocess(self, in_, data):
        """preprocess undone: an input blob (one sample) back to an H x W x K image."""
        self._check(in_)
        out = np.array(data, dtype=np.float32).squeeze()
        if in_ in self.input_scale:
            out /= self.input_scale[in_]
        if in_ in self.mean:
            out += self.mean[in_]
        if in_ in self.raw_scale:
            out /= self.raw_scale[in_]
        if in_ in self.channel_swap:
            out = out[np.argsort(self.channel_swap[in_]), :, :]
        if in_ in self.transpose:
            out = out.transpose(np.argsort(self.transpose[in_]))
        return out

    def set_transpose(self, in_, order):
        """Axis order from the image's to the input's, e.g. (2, 0, 1) for HWK -> KHW."""
        self._check(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise FirecaffeError(f"Transformer: transpose order {tuple(order)} needs "
                                 f"{len(self.inputs[in_]) - 1} axes for input '{in_}'")
        self.transpose[in_] = tuple(order)

    def set_channel_swap(self, in_, order):
        """Channel order, e.g. (2, 1, 0) for RGB -> BGR (applied after transpose)."""
        self._check(in_)
        if len(order) != self.inputs[in_][1]:
            raise FirecaffeError(f"Transformer: channel swap {tuple(order)} needs {self.inputs[in_][1]} "
                                 f"channels for input '{in_}'")
        self.channel_swap[in_] = tuple(order)

    def set_raw_scale(self, in_, scale):
        """Multiply by ``scale`` before the mean (255 for load_image's [0, 1] images)."""
        self._check(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_, mean):
        """A per-channel (K,) mean, or a K x H x W mean image (resized to the input if needed)."""
        self._check(in_)
        mean = np.asarray(mean, dtype=np.float32)
        channels, size = self.inputs[in_][1], tuple(self.inputs[in_][2:])
        if mean.ndim == 1:
            if mean.shape[0] != channels:
                raise FirecaffeError(f"Transformer: mean has {mean.shape[0]} values, input '{in_}' "
                                     f"has {channels} channels")
            mean = mean[:, np.newaxis, np.newaxis]
        else:
            if mean.ndim == 2:
                mean = mean[np.newaxis]
            if mean.ndim != 3 or mean.shape[0] != channels:
                raise FirecaffeError(f"Transformer: mean of shape {mean.shape} does not fit input '{in_}' "
                                     f"of shape {self.inputs[in_]}")
            if mean.shape[1:] != size:
                mean = resize_image(mean.transpose(1, 2, 0), size).transpose(2, 0, 1)
        self.mean[in_] = mean

    def set_input_scale(self, in_, scale):
        """Multiply by ``scale`` after the mean."""
        self._check(in_)
        self.input_scale[in_] = scale
