"""Does ImageData's decoding keep up with training? Decode rate against the step
time of SqueezeNet v1.1 at batch 32, in one run on this machine.

    python benchmarks/image_decode.py [--images 96] [--iterations 4]

1. writes JPEG files (quality 90): 227x227 ones, and ImageNet-like 500x375 ones
   that ImageData resizes to 256x256 (new_height/new_width) before the crop;
2. decode rate, one thread: images per second through firecaffe.data.images;
3. SqueezeNet v1.1 train net (nets/squeezenet_v1.1/train_val.prototxt, batch 32)
   reading with ImageData (500x375 files, new 256x256, crop 227, mirror, mean):
   seconds per forward+backward, and how many of them the data layer's forward
   takes, decoding in the calling thread and in 2 background threads.
Rounds alternate between the two so that load changes hit both; in each round a
variant runs one untimed iteration (which starts the prefetch of the next batch,
as every iteration of a training run does) and one timed one.
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
    """Images per second of wall time and per CPU second (the second holds under load)."""
    from firecaffe.data.images import load_image
    rates, cpu_rates = [], []
    for _ in range(rounds):
        start, cpu = time.perf_counter(), time.process_time()
        for name in names:
            load_image(os.path.join(folder, name), *new_size)
        rates.append(len(names) / (time.perf_counter() - start))
        cpu_rates.append(len(names) / (time.process_time() - cpu))
    return statistics.median(rates), statistics.median(cpu_rates)


def squeezenet(folder):
    """The SqueezeNet v1.1 TRAIN net with its Data layer replaced by ImageData."""
    from google.protobuf import text_format
    from firecaffe.proto import caffe_pb2, io
    param = io.read_net(os.path.join(ROOT, "nets/squeezenet_v1.1/train_val.prototxt"))
    layers = [lp for lp in param.layer if not any(r.phase == caffe_pb2.TEST for r in lp.include)]
    text = (f'name: "data" type: "ImageData" top: "data" top: "label" image_data_param {{ '
            f'source: "{folder}/list_500x375.txt" root_folder: "{folder}/" batch_size: 32 '
            f'new_height: 256 new_width: 256 shuffle: true }} transform_param {{ mirror: true '
            f'crop_size: 227 mean_value: 104 mean_value: 117 mean_value: 123 }}')
    data = text_format.Parse(text, caffe_pb2.LayerParameter())
    del param.layer[:]
    param.layer.extend([data] + [lp for lp in layers if lp.type not in ("Data", "Accuracy")])
    import firecaffe
    return firecaffe.Net(param, firecaffe.TRAIN)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--iterations", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("FIRECAFFE_NO_PROGRESS", "1")
    with tempfile.TemporaryDirectory() as folder:
        small = write_jpegs(folder, args.images, (227, 227))
        large = write_jpegs(folder, args.images, (500, 375))
        for label, names, size in (("227x227 JPEG, no resize:        ", small, (0, 0)),
                                   ("500x375 JPEG, resize to 256x256:", large, (256, 256))):
            wall, cpu = decode_rate(folder, names, size)
            print(f"decode {label} {wall:7.1f} images/s, {cpu:7.1f} images per CPU second (1 thread)")
        from firecaffe.data.prefetch import Prefetcher
        net = squeezenet(folder)
        layer = net.layers[0]
        decoders = {0: Prefetcher(layer._decode, threads=0), 2: Prefetcher(layer._decode, threads=2)}
        net.forward_backward()                        # warm up
        rows = {0: [], 2: []}
        for _ in range(args.iterations):
            for threads, decoder in decoders.items():
                layer.decoder = decoder
                net.forward_backward()        # untimed: starts the prefetch, as any earlier iteration does
                start, cpu = time.perf_counter(), time.process_time()
                net.forward_layer(0)
                data = time.perf_counter() - start
                net.forward_range(1)
                net.backward_range(end=1)
                rows[threads].append((data, time.perf_counter() - start, time.process_time() - cpu))
                print(f"  threads {threads}: data layer {data:.2f} s of {rows[threads][-1][1]:.2f} s", flush=True)
        for threads, label in ((0, "decoding in the net's thread"), (2, "decoding in 2 background threads")):
            data, total, cpu = (statistics.median(col) for col in zip(*rows[threads]))
            print(f"SqueezeNet v1.1 batch 32 fwd+bwd with ImageData, {label}: {total:6.2f} s/iter, "
                  f"of which the data layer {data:5.2f} s ({100 * data / total:4.1f} %); "
                  f"{cpu:6.2f} CPU s/iter (all threads)")
        print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
