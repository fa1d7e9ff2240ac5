"""Golden outputs of Caffe's ImageData layer on small PNG images (lossless, so the
decoders agree and only resizing and the transformation are compared).

Needs the OpenCV build of the oracle (build-opencv.sh); run with Caffe's pycaffe:
    source ~/.cache/caffe-oracle/caffe/env.sh
    LD_LIBRARY_PATH=$HOME/.cache/caffe-oracle/caffe/src/build_cv/lib:$LD_LIBRARY_PATH \
        $CAFFE_PY tests/data/golden_data/make_image_golden.py
Writes images/*.png, images/list.txt and image_data.npz (one entry per case:
the layer's prototxt text and the data and label of two TEST batches); and for
WindowData images/windows.txt with one foreground and one background window,
so that Caffe's random choice of windows has a single outcome (no mirror).
"""
import os
import tempfile

import struct
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = os.path.join(HERE, "images")
SIZES = [(13, 17), (9, 11), (16, 20), (5, 7), (13, 17)]          # (height, width) of each image

CASES = {
    "color_resize": ("new_height: 10 new_width: 8", ""),
    "gray_resize": ("new_height: 7 new_width: 9 is_color: false", ""),
    "shrink_half": ("new_height: 8 new_width: 10", ""),
    "grow": ("new_height: 29 new_width: 31", ""),
    "transform": ("new_height: 12 new_width: 14",
                  "transform_param { crop_size: 9 mean_value: 10 mean_value: 20 mean_value: 30 scale: 0.5 }"),
}


def write_png(path, pixels):
    """An 8-bit RGB PNG with the standard library (the system Python has no Pillow)."""
    h, w, _ = pixels.shape
    raw = b"".join(b"\0" + pixels[y].tobytes() for y in range(h))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def write_images():
    gen = np.random.default_rng(0)
    os.makedirs(IMAGES, exist_ok=True)
    lines = []
    for k, (h, w) in enumerate(SIZES):
        pixels = gen.integers(0, 256, (h, w, 3), dtype=np.uint8)
        write_png(os.path.join(IMAGES, f"img{k}.png"), pixels)
        lines.append(f"img{k}.png {k * 3 + 1}")
    with open(os.path.join(IMAGES, "list.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


WINDOWS = """# 0
img0.png
3
13
17
2
1 0.8 2 3 12 9
0 0.45 0 0 5 5
# 1
img2.png
3
16
20
2
2 0.4 1 1 10 10
0 0.1 4 2 19 15
"""
WINDOW_CASES = {
    "warp": "",
    "context_square": "context_pad: 2 crop_mode: \"square\"",
    "context_warp_scaled": "context_pad: 3 scale: 0.25",
}
WINDOW_TRANSFORM = "transform_param { crop_size: 10 mean_value: 50 mean_value: 60 mean_value: 70 }"


def window_text(extra):
    return ('layer { name: "data" type: "WindowData" top: "data" top: "label" window_data_param { '
            'source: "SOURCE" root_folder: "ROOT/" batch_size: 4 fg_fraction: 0.5 fg_threshold: 0.5 '
            f'bg_threshold: 0.35 {extra} }} {WINDOW_TRANSFORM} }}')


ENCODED_CASES = {"native": "crop_size: 5", "force_gray": "crop_size: 5 force_gray: true",
                 "mean_scale": "crop_size: 4 mean_value: 100 scale: 0.5"}


def encoded_text(transform):
    return ('layer { name: "data" type: "Data" top: "data" top: "label" data_param { source: "SOURCE" '
            f'batch_size: 3 backend: LMDB }} transform_param {{ {transform} }} }}')


def write_encoded_lmdb(path):
    """The PNG images as an LMDB of encoded Datum records, written by firecaffe
    (its Python: FIRECAFFE_PY, default python) as convert_imageset --encoded would."""
    code = """
import sys, glob, lmdb, numpy as np
from PIL import Image
from firecaffe.data.db import make_datum
env = lmdb.open(sys.argv[1], map_size=1 << 24)
with env.begin(write=True) as txn:
    for k, name in enumerate(sorted(glob.glob(sys.argv[2] + '/img*.png'))):
        image = np.asarray(Image.open(name).convert('RGB'))[:, :, ::-1].transpose(2, 0, 1)
        txn.put(b'%08d' % k, make_datum(image, 10 + k, 'png').SerializeToString())
env.close()
"""
    import subprocess
    subprocess.run([os.environ.get("FIRECAFFE_PY", "python"), "-c", code, path, IMAGES], check=True)


def layer_text(params, root):
    image, transform = params
    return ('layer { name: "data" type: "ImageData" top: "data" top: "label" '
            f'image_data_param {{ source: "SOURCE" root_folder: "{root}/" batch_size: 3 {image} }} {transform} }}')


def main():
    import caffe
    caffe.set_mode_cpu()
    write_images()
    out = {}
    for name, params in CASES.items():
        text = layer_text(params, "ROOT")
        concrete = text.replace("SOURCE", os.path.join(IMAGES, "list.txt")).replace("ROOT", IMAGES)
        with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
            f.write('name: "golden"\n' + concrete + "\n")
        net = caffe.Net(f.name, caffe.TEST)
        os.unlink(f.name)
        out[f"{name}_prototxt"] = np.array(text)
        for b in range(2):
            net.forward()
            out[f"{name}_data{b}"] = net.blobs["data"].data.copy()
            out[f"{name}_label{b}"] = net.blobs["label"].data.copy()
    with open(os.path.join(IMAGES, "windows.txt"), "w") as f:
        f.write(WINDOWS)
    for name, extra in WINDOW_CASES.items():
        text = window_text(extra)
        concrete = text.replace("SOURCE", os.path.join(IMAGES, "windows.txt")).replace("ROOT", IMAGES)
        with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
            f.write('name: "golden"\n' + concrete + "\n")
        net = caffe.Net(f.name, caffe.TRAIN)
        os.unlink(f.name)
        net.forward()
        out[f"window_{name}_prototxt"] = np.array(text)
        out[f"window_{name}_data"] = net.blobs["data"].data.copy()
        out[f"window_{name}_label"] = net.blobs["label"].data.copy()
    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "encoded_lmdb")
        write_encoded_lmdb(source)
        for name, transform in ENCODED_CASES.items():
            text = encoded_text(transform)
            with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
                f.write('name: "golden"\n' + text.replace("SOURCE", source) + "\n")
            net = caffe.Net(f.name, caffe.TEST)
            os.unlink(f.name)
            out[f"encoded_{name}_prototxt"] = np.array(text)
            for b in range(2):
                net.forward()
                out[f"encoded_{name}_data{b}"] = net.blobs["data"].data.copy()
                out[f"encoded_{name}_label{b}"] = net.blobs["label"].data.copy()
    np.savez_compressed(os.path.join(HERE, "image_data.npz"), **out)
    print(sorted(out))


if __name__ == "__main__":
    main()
