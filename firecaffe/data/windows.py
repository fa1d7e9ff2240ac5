"""R-CNN window files and Caffe's window crops, for WindowData.

A window file lists images, each as

    # image_index
    image_path
    channels
    height
    width
    num_windows
    class_index overlap x1 y1 x2 y2     (num_windows lines; pixel corners, inclusive)

Images must be numbered 0, 1, 2, ... in file order (Caffe indexes them so).
"""
import numpy as np

from ..errors import DataError
from .images import resize_bilinear


class WindowFile:
    """The images and the foreground / background windows of a window file."""

    def __init__(self, source, root_folder="", fg_threshold=0.5, bg_threshold=0.5):
        try:
            with open(source) as f:
                lines = f.read().splitlines()
        except OSError as exc:
            raise DataError(f"cannot read the window file {source}: {exc.strerror}") from None
        tokens = [(word, number) for number, line in enumerate(lines, 1) for word in line.split()]
        self.images, self.fg, self.bg = [], [], []    # windows: (image, label, x1, y1, x2, y2)
        position = 0

        def take(count, what):
            nonlocal position
            if position + count > len(tokens):
                raise DataError(f"{source}: ends in the middle of {what}")
            words = tokens[position:position + count]
            position += count
            return words

        while position < len(tokens):
            (hashtag, line), (index, _) = take(2, "an image header")
            if hashtag != "#" or index != str(len(self.images)):
                raise DataError(f"{source}:{line}: expected '# {len(self.images)}' (images are numbered "
                                f"in order from 0), got {hashtag!r} {index!r}")
            path = take(1, "an image header")[0][0]
            try:
                channels, height, width, count = (int(w) for w, _ in take(4, "an image header"))
                for _ in range(count):
                    words = take(6, "a window")
                    label, overlap = int(words[0][0]), float(words[1][0])
                    x1, y1, x2, y2 = (int(w) for w, _ in words[2:])
                    window = (len(self.images), label, x1, y1, x2, y2)
                    if overlap >= fg_threshold:
                        if label <= 0:
                            raise DataError(f"{source}:{words[0][1]}: a foreground window "
                                            f"(overlap {overlap} >= fg_threshold) needs a label > 0")
                        self.fg.append(window)
                    elif overlap < bg_threshold:
                        self.bg.append(window[:1] + (0,) + window[2:])
            except ValueError as exc:
                raise DataError(f"{source}: image {len(self.images)} ({path}): {exc}") from None
            self.images.append((root_folder + path, channels, height, width))
        if not self.images:
            raise DataError(f"{source}: the window file lists no images")


def _round(value):
    """C's round(): halves away from zero."""
    value = float(value)
    return int(np.copysign(np.floor(abs(value) + 0.5), value))


def crop_window(image, window, crop_size, context_pad=0, square=False, mirror=False):
    """Caffe's window crop of ``image`` (C, H, W) uint8.

    Returns (pixels (C, h, w) uint8, pad_h, pad_w): the window (grown by
    context_pad, squared in 'square' mode) clipped to the image, warped to its
    share of a crop_size square and placed at (pad_h, pad_w) in it.
    """
    _, rows, cols = image.shape
    _, _, x1, y1, x2, y2 = window
    f32 = np.float32
    out_h = out_w = crop_size
    pad_h = pad_w = 0
    if context_pad > 0 or square:
        context_scale = f32(crop_size) / f32(crop_size - 2 * context_pad)
        half_h, half_w = f32(y2 - y1 + 1) / f32(2), f32(x2 - x1 + 1) / f32(2)
        cx, cy = f32(x1) + half_w, f32(y1) + half_h
        if square:
            half_h = half_w = max(half_h, half_w)
        x1, x2 = _round(cx - half_w * context_scale), _round(cx + half_w * context_scale)
        y1, y2 = _round(cy - half_h * context_scale), _round(cy + half_h * context_scale)
        unclipped_h, unclipped_w = y2 - y1 + 1, x2 - x1 + 1
        pad_x1, pad_y1 = max(0, -x1), max(0, -y1)
        pad_x2, pad_y2 = max(0, x2 - cols + 1), max(0, y2 - rows + 1)
        x1, x2, y1, y2 = x1 + pad_x1, x2 - pad_x2, y1 + pad_y1, y2 - pad_y2
        scale_x, scale_y = f32(crop_size) / f32(unclipped_w), f32(crop_size) / f32(unclipped_h)
        out_w, out_h = _round(f32(x2 - x1 + 1) * scale_x), _round(f32(y2 - y1 + 1) * scale_y)
        pad_x1, pad_x2 = _round(f32(pad_x1) * scale_x), _round(f32(pad_x2) * scale_x)
        pad_h = _round(f32(pad_y1) * scale_y)
        pad_w = pad_x2 if mirror else pad_x1
        out_h, out_w = min(out_h, crop_size - pad_h), min(out_w, crop_size - pad_w)
    if not (0 <= x1 <= x2 < cols and 0 <= y1 <= y2 < rows):
        raise DataError(f"window ({window[2]}, {window[3]}, {window[4]}, {window[5]}) lies outside "
                        f"the {cols}x{rows} image")
    if out_h <= 0 or out_w <= 0:
        raise DataError(f"window ({window[2]}, {window[3]}, {window[4]}, {window[5]}) warps to "
                        f"nothing at crop_size {crop_size}")
    region = image[:, y1:y2 + 1, x1:x2 + 1].transpose(1, 2, 0)
    pixels = resize_bilinear(np.ascontiguousarray(region), out_h, out_w)
    if mirror:
        pixels = pixels[:, ::-1]
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)), pad_h, pad_w
