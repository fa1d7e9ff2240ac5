"""Make the HDF5 files squeezenet_cifar trains on, from CIFAR-10's binary release.

    python nets/squeezenet_cifar/make_data.py cifar-10-binary.tar.gz     # the real data set
    python nets/squeezenet_cifar/make_data.py --synthetic 512            # random images, for smoke tests

The archive is the "CIFAR-10 binary version" of https://www.cs.toronto.edu/~kriz/cifar.html
(records of one label byte and 3,072 pixel bytes, channel-major RGB). Writes, under
--out (default data/, the paths train_val.prototxt names):

    cifar10_train.h5, cifar10_test.h5     datasets `data` (N, 3, 32, 32) float32: pixel values
                                          0-255 minus the per-channel mean of the training set,
                                          and `label` (N,) float32
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


def synthetic(count, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, count).astype(np.uint8)


def write(out, name, images, labels, mean):
    path = os.path.join(out, f"cifar10_{name}.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=images.astype(np.float32) - mean)
        f.create_dataset("label", data=labels.astype(np.float32))
    with open(os.path.join(out, f"cifar10_{name}_h5.txt"), "w") as f:
        f.write(f"cifar10_{name}.h5\n")
    print(f"{path}: {len(labels)} images")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("archive", nargs="?", help="cifar-10-binary.tar.gz")
    parser.add_argument("--synthetic", type=int, metavar="N", help="write N random training images (N/5 test)")
    parser.add_argument("--out", default="data", help="output folder (default: data)")
    args = parser.parse_args(argv)
    if (args.archive is None) == (args.synthetic is None):
        parser.error("give the CIFAR-10 binary archive or --synthetic N")
    if args.synthetic:
        train, test = synthetic(args.synthetic, 1), synthetic(max(1, args.synthetic // 5), 2)
    else:
        train, test = read_records(args.archive, TRAIN_MEMBERS), read_records(args.archive, TEST_MEMBERS)
    os.makedirs(args.out, exist_ok=True)
    mean = train[0].reshape(len(train[0]), 3, -1).mean(axis=(0, 2)).astype(np.float32)[:, None, None]
    write(args.out, "train", *train, mean)
    write(args.out, "test", *test, mean)


if __name__ == "__main__":
    main()
