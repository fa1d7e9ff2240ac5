"""Image files for ImageData and WindowData: list files, decoding with Pillow into
Caffe's layout (C, H, W) uint8 in BGR order, and OpenCV's bilinear resize.

Caffe reads images with OpenCV (cv::imread, cv::resize INTER_LINEAR). Here:
- decoding is Pillow's; PNG/BMP/PPM pixels are the same, JPEG decoders may differ
  by a grey level or two (libjpeg versions and their IDCT);
- EXIF orientation is applied, as OpenCV's imread does by default;
- gray (is_color: false) uses the weights and rounding of the library OpenCV
  leaves it to (libpng for PNG, libjpeg for JPEG, its own for other formats);
- ``resize_bilinear`` follows OpenCV's INTER_LINEAR on 8-bit images: pixel centres
  at +0.5, no antialiasing when shrinking, 11-bit fixed-point weights and the
  rounding of its vectorised vertical pass, so resized pixels agree with OpenCV's.
"""
import numpy as np

from ..errors import DataError

_COEF_BITS = 11
_COEF_SCALE = 1 << _COEF_BITS


def read_list(source, where=""):
    """Caffe's image list: one sample a line, the label after the last space.
    Returns (paths, labels, line numbers)."""
    try:
        with open(source, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise DataError(f"{where}cannot read the image list {source}: {exc.strerror}") from None
    paths, labels, numbers = [], [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        path, _, label = line.rpartition(" ")
        if not path:
            raise DataError(f"{where}{source}:{number}: expected 'path label', got {line!r}")
        paths.append(path)
        labels.append(_atoi(label))
        numbers.append(number)
    if not paths:
        raise DataError(f"{where}the image list {source} is empty")
    return paths, np.asarray(labels, dtype=np.int64), numbers


def _atoi(text):
    """C's atoi: the leading integer, 0 if none (Caffe parses labels so)."""
    text = text.strip()
    end = 1 if text[:1] in "+-" else 0
    while end < len(text) and text[end].isdigit():
        end += 1
    try:
        return int(text[:end])
    except ValueError:
        return 0


def load_image(path, new_height=0, new_width=0, is_color=True):
    """The image at ``path`` as (C, H, W) uint8, BGR (C = 3) or gray (C = 1),
    resized to new_height x new_width when both are set."""
    try:
        pixels = decode(path, "color" if is_color else "gray", resize=(new_height, new_width))
    except FileNotFoundError:
        raise DataError(f"could not load {path}: no such file") from None
    except DataError as exc:
        raise DataError(f"could not load {path}: {exc}") from None
    return pixels


def decode(source, mode="color", resize=(0, 0)):
    """Decode an image file (a path or a binary file object) as OpenCV's imread
    would: ``mode`` "color" (BGR), "gray", or "native" (gray images stay gray,
    others become BGR: IMREAD_ANYCOLOR). Returns (C, H, W) uint8."""
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise DataError("decoding images needs Pillow: pip install pillow") from None
    try:
        with Image.open(source) as image:
            if mode == "native":
                mode = "gray" if image.mode in ("1", "L", "I;16", "I", "F") else "color"
            is_color = mode == "color"
            image.draft("RGB" if is_color else "L", None)
            if image.format in ("JPEG", "MPO", "TIFF", "WEBP") and image.getexif().get(0x0112, 1) != 1:
                image = ImageOps.exif_transpose(image)
            if is_color or image.mode in ("L", "1", "P") or image.format == "JPEG":
                pixels = np.asarray(image.convert("RGB" if is_color else "L"))
            else:
                pixels = _gray(np.asarray(image.convert("RGB")), image.format)
    except FileNotFoundError:
        raise
    except Exception as exc:    # Pillow's UnidentifiedImageError, truncated files, ...
        raise DataError(str(exc)) from None
    new_height, new_width = resize
    if new_height > 0 and new_width > 0 and pixels.shape[:2] != (new_height, new_width):
        pixels = resize_bilinear(pixels, new_height, new_width)
    if not is_color:
        return pixels[None]
    return np.ascontiguousarray(pixels[:, :, ::-1].transpose(2, 0, 1))


def _gray(rgb, file_format):
    """Luma as OpenCV's imread(IMREAD_GRAYSCALE) computes it: for PNG libpng's
    15-bit weights (0.299 and 0.587 truncated, as libpng does) without rounding,
    for other formats OpenCV's rounded 14-bit ones
    (JPEG is decoded to gray by libjpeg itself, as Pillow's draft mode does)."""
    r, g, b = (rgb[..., k].astype(np.int64) for k in range(3))
    if file_format == "PNG":
        return ((9797 * r + 19234 * g + 3737 * b) >> 15).astype(np.uint8)
    return ((4899 * r + 9617 * g + 1868 * b + 8192) >> 14).astype(np.uint8)


def _taps(src_size, dst_size, clamp_weights):
    """Source indices and 11-bit weights of each output column or row (OpenCV's
    rules: beyond the border columns take the border pixel with weight 1; rows
    keep their fractional weights and only their indices are clipped)."""
    scale = 1 / (dst_size / src_size)
    f = ((np.arange(dst_size) + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    f = f - s
    if clamp_weights:
        low, high = s < 0, s >= src_size - 1
        f[low], s[low] = 0, 0
        f[high], s[high] = 0, src_size - 1
    w1 = np.rint(f * _COEF_SCALE).astype(np.int64)       # saturate_cast<short> rounds to nearest
    w0 = np.rint((1 - f) * _COEF_SCALE).astype(np.int64)
    return np.clip(s, 0, src_size - 1), np.clip(s + 1, 0, src_size - 1), w0, w1


def resize_bilinear(pixels, height, width):
    """OpenCV's cv::resize(INTER_LINEAR) of an (H, W) or (H, W, C) uint8 image."""
    channels = pixels.shape[2] if pixels.ndim == 3 else 1
    x0, x1, a0, a1 = (np.repeat(v, channels) for v in _taps(pixels.shape[1], width, True))
    lane = np.tile(np.arange(channels), width)
    x0, x1 = x0 * channels + lane, x1 * channels + lane        # columns of the (H, W*C) view
    y0, y1, b0, b1 = _taps(pixels.shape[0], height, False)
    # horizontal pass on the rows the vertical pass needs only, in int32 (< 2^20)
    needed, where = np.unique(np.concatenate([y0, y1]), return_inverse=True)
    src = pixels.reshape(pixels.shape[0], -1)[needed].astype(np.int32)
    rows = np.take(src, x0, axis=1) * a0.astype(np.int32)
    rows += np.take(src, x1, axis=1) * a1.astype(np.int32)
    rows >>= 4
    top, bottom = rows[where[:height]], rows[where[height:]]
    top *= b0.astype(np.int32)[:, None]                 # < 2^15 * 2^11: fits int32
    bottom *= b1.astype(np.int32)[:, None]
    top >>= 16
    bottom >>= 16
    top += bottom
    top += 2
    top >>= 2
    out = np.clip(top, 0, 255).astype(np.uint8)
    return out.reshape((height, width) + pixels.shape[2:])
