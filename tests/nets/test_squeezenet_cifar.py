"""squeezenet_cifar trains end to end on CPU from the HDF5 files its make_data.py writes."""
import os
import runpy
import subprocess
import sys
from pathlib import Path

from google.protobuf import text_format

from firecaffe.proto import caffe_pb2

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "nets" / "squeezenet_cifar"


def test_make_data_writes_mean_subtracted_hdf5_and_lists(tmp_path):
    import h5py
    runpy.run_path(str(FOLDER / "make_data.py"), run_name="make_data")["main"](
        ["--synthetic", "40", "--out", str(tmp_path)])
    with h5py.File(tmp_path / "cifar10_train.h5") as f:
        assert f["data"].shape == (40, 3, 32, 32) and f["label"].shape == (40,)
        assert abs(float(f["data"][...].mean())) < 1e-3            # the train mean is taken out
        assert abs(float(f["data"][...].std()) - 1) < 1e-3          # and each channel scaled to unit variance
    assert (tmp_path / "cifar10_test_h5.txt").read_text() == "cifar10_test.h5\n"


def test_make_data_reads_cifar10_as_class_folders(tmp_path):
    """--folders: DIR/train/<class>/* and DIR/test/<class>/*, labels in CIFAR-10's order by name;
    PNG here so that the pixels come back exactly (the JPEG copies round them)."""
    import h5py
    import numpy as np
    import pytest
    from PIL import Image
    make = runpy.run_path(str(FOLDER / "make_data.py"), run_name="make_data")
    rng = np.random.default_rng(0)
    pixels = {}
    for split, count in (("train", 3), ("test", 1)):
        for label, name in enumerate(make["CLASSES"]):
            (tmp_path / "src" / split / name).mkdir(parents=True)
            for k in range(count):
                image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(image).save(tmp_path / "src" / split / name / f"{k:04d}.png")
                pixels[(split, label, k)] = image.transpose(2, 0, 1)
    make["main"](["--folders", str(tmp_path / "src"), "--out", str(tmp_path / "out")])
    train = [np.stack([pixels[("train", c, k)] for k in range(3)]) for c in range(10)]
    channels = np.concatenate(train).reshape(30, 3, -1)
    mean, std = (channels.mean(axis=(0, 2))[:, None, None], channels.std(axis=(0, 2))[:, None, None])
    with h5py.File(tmp_path / "out" / "cifar10_test.h5") as f:
        assert list(f["label"][...]) == list(range(10))
        np.testing.assert_allclose(f["data"][3], (pixels[("test", 3, 0)] - mean) / std, atol=1e-4)   # cat
    with h5py.File(tmp_path / "out" / "cifar10_train.h5") as f:
        labels = f["label"][...].astype(int)
        assert sorted(labels) == sorted(list(range(10)) * 3) and list(labels) != sorted(labels)   # mixed
        first = f["data"][0] * std + mean
        assert any(np.allclose(first, pixels[("train", labels[0], k)], atol=1e-3) for k in range(3))
    (tmp_path / "src" / "test" / "truck").rename(tmp_path / "src" / "test" / "lorry")
    with pytest.raises(SystemExit, match="class folders"):
        make["main"](["--folders", str(tmp_path / "src"), "--out", str(tmp_path / "out")])


def test_solver_trains_two_iterations_on_synthetic_data(tmp_path):
    runpy.run_path(str(FOLDER / "make_data.py"), run_name="make_data")["main"](
        ["--synthetic", "16", "--out", str(tmp_path)])
    net = text_format.Parse((FOLDER / "train_val.prototxt").read_text(), caffe_pb2.NetParameter())
    for layer in net.layer:
        if layer.type == "HDF5Data":
            layer.hdf5_data_param.source = str(tmp_path / os.path.basename(layer.hdf5_data_param.source))
            layer.hdf5_data_param.batch_size = 4
    (tmp_path / "train_val.prototxt").write_text(text_format.MessageToString(net))
    solver = text_format.Parse((FOLDER / "solver.prototxt").read_text(), caffe_pb2.SolverParameter())
    solver.net = str(tmp_path / "train_val.prototxt")
    (tmp_path / "solver.prototxt").write_text(text_format.MessageToString(solver))
    run = subprocess.run(
        [sys.executable, "-m", "firecaffe", "train", str(tmp_path / "solver.prototxt"), "--global-batch", "4",
         "--max-iter", "2", "--display", "1", "--test-interval", "1000",
         "--snapshot-prefix", str(tmp_path / "snap")],
        cwd=ROOT, env=dict(os.environ, FIRECAFFE_NO_PROGRESS="1"), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Iteration 2" in run.stdout + run.stderr
    assert (tmp_path / "snap_iter_2.caffemodel").exists()
