"""Every snapshot file gets a SHA-256 beside it (PATH.sha256) that is checked on load: damage
inside a .caffemodel or .solverstate is one line naming the file, and --resume-latest takes the
newest intact snapshot, saying which it skipped and why. The snapshot files stay Caffe's formats."""
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from firecaffe import cli
from firecaffe.core import atomic
from firecaffe.proto import caffe_pb2
from firecaffe.solvers import Solver, snapshot as snapshots
from firecaffe.proto import io

REPO = Path(__file__).resolve().parents[2]
TRAIN = ["train", "nets/lenet_digits/solver.prototxt", "--test-interval", "0", "--display", "0"]


def solver(prefix, max_iter=4):
    param = io.read_solver(str(REPO / "nets/lenet_digits/solver.prototxt"))
    param.display = param.test_interval = 0
    del param.test_iter[:]
    param.snapshot, param.snapshot_prefix, param.max_iter = 2, str(prefix), max_iter
    return Solver(param)


@pytest.fixture(scope="module")
def four_snapshots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("snaps")
    solver(folder / "lenet", max_iter=4).solve()
    return folder


@pytest.fixture
def prefix(four_snapshots, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    shutil.copytree(four_snapshots, tmp_path / "snaps")
    return tmp_path / "snaps" / "lenet"


def overwrite(path, offset_fraction, data):
    raw = bytearray(path.read_bytes())
    at = int(len(raw) * offset_fraction)
    raw[at:at + len(data)] = data
    path.write_bytes(bytes(raw[:len(raw)]))


def run_cli(args, capsys):
    try:
        cli.main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


def test_each_snapshot_file_has_a_checksum_that_sha256sum_accepts_and_caffe_formats_stay(prefix):
    for name in ("lenet_iter_4.caffemodel", "lenet_iter_4.solverstate"):
        path = prefix.parent / name
        line = (prefix.parent / (name + ".sha256")).read_text()
        assert line == f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {name}\n"
    # the data files themselves are plain NetParameter / SolverState messages, as Caffe writes them
    net = caffe_pb2.NetParameter.FromString((prefix.parent / "lenet_iter_4.caffemodel").read_bytes())
    assert [layer.name for layer in net.layer if layer.blobs] == ["conv1", "conv2", "ip1", "ip2"]
    state = caffe_pb2.SolverState.FromString((prefix.parent / "lenet_iter_4.solverstate").read_bytes())
    assert state.iter == 4 and state.learned_net.endswith("lenet_iter_4.caffemodel")
    if shutil.which("sha256sum"):
        done = subprocess.run(["sha256sum", "-c", "lenet_iter_4.caffemodel.sha256", "lenet_iter_4.solverstate.sha256"],
                              cwd=prefix.parent, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("victim, damage", [("caffemodel", b"\0" * 4096), ("solverstate", b"\xff" * 2048)])
def test_damage_inside_a_snapshot_is_one_line_naming_the_file(prefix, capsys, victim, damage):
    path = Path(f"{prefix}_iter_4.{victim}")
    overwrite(path, 0.5, damage)
    code, err = run_cli(TRAIN + ["--max-iter", "6", "--snapshot", f"{prefix}_iter_4.solverstate"], capsys)
    lines = [line for line in err.splitlines() if line.startswith("firecaffe:")]
    assert code == 1 and len(lines) == 1, err
    assert str(path) in lines[0] and "SHA-256 does not match" in lines[0], lines


def test_damaged_weights_given_to_weights_are_refused(prefix, capsys):
    path = Path(f"{prefix}_iter_4.caffemodel")
    overwrite(path, 0.3, b"\0" * 4096)
    code, err = run_cli(TRAIN + ["--max-iter", "2", "--weights", str(path)], capsys)
    lines = [line for line in err.splitlines() if line.startswith("firecaffe:")]
    assert code == 1 and len(lines) == 1 and str(path) in lines[0] and "SHA-256" in lines[0], err


@pytest.mark.parametrize("victim", ["solverstate", "caffemodel"])
def test_resume_latest_skips_a_truncated_newest_snapshot_and_says_why(prefix, capsys, victim):
    path = Path(f"{prefix}_iter_4.{victim}")
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    code, err = run_cli(TRAIN + ["--max-iter", "6", "--resume-latest", str(prefix),
                                  "--snapshot-prefix", str(prefix)], capsys)
    assert code == 0, err
    skipped = [line for line in err.splitlines() if "skipping" in line]
    assert len(skipped) == 1 and "iteration 4" in skipped[0] and str(path) in skipped[0], err
    assert "cut short" in skipped[0]
    assert f"Restored solver state from {prefix}_iter_2.solverstate at iteration 2" in err
    # and the run from the intact snapshot ends where an uninterrupted one does
    whole = prefix.parent / "whole"
    code, err = run_cli(TRAIN + ["--max-iter", "6", "--snapshot-prefix", str(whole)], capsys)
    assert code == 0, err
    assert Path(f"{whole}_iter_6.caffemodel").read_bytes() == Path(f"{prefix}_iter_6.caffemodel").read_bytes()


def test_resume_latest_with_no_intact_snapshot_finds_none(prefix, capsys):
    for n in (2, 4):
        path = Path(f"{prefix}_iter_{n}.caffemodel")
        overwrite(path, 0.6, b"\0" * 64)
    assert snapshots.latest(str(prefix)) is None


def test_rewriting_a_file_drops_its_old_checksum(tmp_path):
    path = tmp_path / "w.caffemodel"
    atomic.write_bytes(str(path), b"old")
    from firecaffe.core import integrity
    integrity.write(str(path))
    assert integrity.problem(str(path)) is None
    atomic.write_bytes(str(path), b"new bytes")
    assert not Path(integrity.sidecar(str(path))).exists() and integrity.problem(str(path)) is None


def test_hdf5_snapshots_of_a_net_with_slash_names_resume_exactly(tmp_path, capsys, monkeypatch):
    """SqueezeNet-style layer names ('fire2/squeeze1x1') in HDF5 snapshots: resumed from iteration 2,
    iteration 4's weights equal those of the uninterrupted run, bit for bit."""
    monkeypatch.chdir(REPO)
    text = (REPO / "nets/lenet_digits/train_test.prototxt").read_text()
    net = tmp_path / "net.prototxt"
    net.write_text(text.replace('name: "conv1"', 'name: "fire2/squeeze1x1"')
                   .replace('name: "ip1"', 'name: "fire9/expand1x1"'))
    solver_file = tmp_path / "solver.prototxt"
    solver_file.write_text((REPO / "nets/lenet_digits/solver.prototxt").read_text()
                           .replace('"nets/lenet_digits/train_test.prototxt"', f'"{net}"'))
    args = ["train", str(solver_file), "--test-interval", "0", "--display", "0", "--snapshot-format", "HDF5",
            "--snapshot-every", "2"]
    code, err = run_cli(args + ["--max-iter", "4", "--snapshot-prefix", str(tmp_path / "whole")], capsys)
    assert code == 0, err
    state = tmp_path / "whole_iter_2.solverstate.h5"
    code, err = run_cli(args + ["--max-iter", "4", "--snapshot-prefix", str(tmp_path / "resumed"),
                                "--snapshot", str(state)], capsys)
    assert code == 0 and "Restored solver state" in err, err
    import h5py
    with h5py.File(tmp_path / "whole_iter_4.caffemodel.h5") as a, h5py.File(tmp_path / "resumed_iter_4.caffemodel.h5") as b:
        for name in ("fire2/squeeze1x1", "fire9/expand1x1", "conv2", "ip2"):
            for k in ("0", "1"):
                assert a["data"][name][k][()].tobytes() == b["data"][name][k][()].tobytes(), (name, k)
