"""Does ImageData's decoding keep up with training? Decode rate against the step
time of SqueezeNet v1.1 at batch 32, in one run on this machine.

    python benchmarks/image_decode.py [--images 96] [--iterations 4]

1. writes JPEG files (quality 90): 227x227 ones, and ImageNet-like 500x375 ones
   that ImageData resizes to 256x256 (new_height/new_width) before the crop;
2. decode rate, one thread: images per second through firecaffe.data.images;
3. SqueezeNet v1.1 train net (nets/squeezenet_v1.1/train_val.prototxt, batch 32):
   seconds per forward+backward with an Input layer (no decoding), then with
   ImageData (500x375 files, new 256x256, crop 227, mirror, mean) decoding in the
   calling thread (FIRECAFFE_DECODE_THREADS=0) and in background threads.
Rounds alternate between the variants so that load changes hit all of them; in
each round a variant runs one untimed iteration (which starts the prefetch of the
next batch, as every iteration of a training run does) and one timed one.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def write_jpegs(folder, count, size):
    from PIL import Image
    gen = np.random.default_rng(0)
    names = []
    w, h = size
    for k in range(count):
        # smooth random content compresses like a photograph, unlike white noise
        small = gen.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((w, h), Image.BICUBIC)
        noise = gen.integers(-12, 13, (h, w, 3))
        pixels = np.clip(np.asarray(image).astype(int) + noise, 0, 255).astype(np.uint8)
        name = f"{w}x{h}_{k}.jpg"
        Image.fromarray(pixels).save(os.path.join(folder, name), quality=90)
        names.append(name)
    with open(os.path.join(folder, f"list_{w}x{h}.txt"), "w") as f:
        f.write("".join(f"{n} {k % 1000}\n" for k, n in enumerate(names)))
    return names


def decode_rate(folder, names, new_size, rounds=3):
    from firecaffe.data.images import load_image
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        for name in names:
            load_image(os.path.join(folder, name), *new_size)
        rates.append(len(names) / (time.perf_counter() - start))
    return statistics.median(rates)


def squeezenet(folder, data_layer):
    from firecaffe.proto import io
    from google.protobuf import text_format
    from firecaffe.proto import caffe_pb2
    param = io.read_net(os.path.join(ROOT, "nets/squeezenet_v1.1/train_val.prototxt"))
    layers = [lp for lp in param.layer if not any(r.phase == caffe_pb2.TEST for r in lp.include)]
    if data_layer == "input":
        text = ('name: "data" type: "Input" top: "data" top: "label" input_param { '
                'shape { dim: 32 dim: 3 dim: 227 dim: 227 } shape { dim: 32 } }')
    else:
        text = (f'name: "data" type: "ImageData" top: "data" top: "label" image_data_param {{ '
                f'source: "{folder}/list_500x375.txt" root_folder: "{folder}/" batch_size: 32 '
                f'new_height: 256 new_width: 256 shuffle: true }} transform_param {{ mirror: true '
                f'crop_size: 227 mean_value: 104 mean_value: 117 mean_value: 123 }}')
    data = text_format.Parse(text, caffe_pb2.LayerParameter())
    del param.layer[:]
    param.layer.extend([data] + [lp for lp in layers if lp.type not in ("Data", "Accuracy")])
    import firecaffe
    net = firecaffe.Net(param, firecaffe.TRAIN)
    if data_layer == "input":
        net.blobs["data"].data[...] = np.random.default_rng(0).standard_normal((32, 3, 227, 227))
        net.blobs["label"].data[...] = np.arange(32) % 1000
    return net


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--iterations", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("FIRECAFFE_NO_PROGRESS", "1")
    with tempfile.TemporaryDirectory() as folder:
        small = write_jpegs(folder, args.images, (227, 227))
        large = write_jpegs(folder, args.images, (500, 375))
        print(f"decode 227x227 JPEG, no resize:         {decode_rate(folder, small, (0, 0)):7.1f} images/s (1 thread)")
        print(f"decode 500x375 JPEG, resize to 256x256: {decode_rate(folder, large, (256, 256)):7.1f} images/s (1 thread)")
        from firecaffe.data.prefetch import Prefetcher
        plain, images = squeezenet(folder, "input"), squeezenet(folder, "image")
        layer = images.layers[0]
        decoders = {0: Prefetcher(layer._decode, threads=0), 2: Prefetcher(layer._decode, threads=2)}
        variants = [("Input (no decoding)", plain, None), ("ImageData, decode in the net's thread", images, 0),
                    ("ImageData, 2 background threads", images, 2)]
        plain.forward_backward()                      # warm up
        images.forward_backward()
        times = {label: [] for label, _, _ in variants}
        for _ in range(args.iterations):
            for label, net, threads in variants:
                if threads is not None:
                    layer.decoder = decoders[threads]
                net.forward_backward()        # untimed: primes the prefetch, as any earlier iteration does
                start = time.perf_counter()
                net.forward_backward()
                times[label].append(time.perf_counter() - start)
        base = statistics.median(times[variants[0][0]])
        for label, _, _ in variants:
            t = statistics.median(times[label])
            print(f"SqueezeNet v1.1 batch 32 fwd+bwd, {label:40s} {t * 1000:7.0f} ms/iter "
                  f"({32 / t:5.1f} images/s, x{t / base:.2f} of Input)")
        print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
