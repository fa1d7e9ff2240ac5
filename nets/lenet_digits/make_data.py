"""Make the lenet_digits data set: scikit-learn's 8x8 handwritten digits
(1,797 images of 10 classes) as Caffe HDF5 files.

The images are shuffled once with a fixed seed and split 1,437 / 360 into
train.h5 and test.h5, with datasets ``data`` (N, 1, 8, 8) float32 in [0, 1]
and ``label`` (N,) float32. train.txt and test.txt list them for HDF5Data.
Run from anywhere: ``python nets/lenet_digits/make_data.py`` (needs scikit-learn).
"""
import os

import h5py
import numpy as np
from sklearn.datasets import load_digits

HERE = os.path.dirname(os.path.abspath(__file__))
NUM_TEST = 360


def main():
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    labels = digits.target.astype(np.float32)
    order = np.random.default_rng(1).permutation(len(labels))
    images, labels = images[order], labels[order]
    splits = {"train": slice(NUM_TEST, None), "test": slice(0, NUM_TEST)}
    for name, rows in splits.items():
        path = os.path.join(HERE, f"{name}.h5")
        with h5py.File(path, "w") as f:
            f.create_dataset("data", data=images[rows])
            f.create_dataset("label", data=labels[rows])
        with open(os.path.join(HERE, f"{name}.txt"), "w") as f:
            f.write(f"{name}.h5\n")
        print(f"{path}: {len(labels[rows])} images")


if __name__ == "__main__":
    main()
