"""Mistakes a new user makes are refused before the first iteration (not after a run), with one
line; a snapshot that cannot be written says which file and how much room is left, and leaves the
previous snapshot intact."""
import errno
import os
import shutil
import subprocess
import uuid

import pytest

from firecaffe import cli
from firecaffe.proto import caffe_pb2
from firecaffe.solvers import snapshot as snapshots
from tests import _required

SOLVER = "nets/lenet_digits/solver.prototxt"
NET = "nets/lenet_digits/train_test.prototxt"
QUICK = ["--max-iter", "2", "--test-interval", "0", "--display", "1"]


def run(args, capsys):
    """(exit status, stderr) of the command run in this process."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(a) for a in args])
        raise SystemExit(0)
    return exit_info.value.code, capsys.readouterr().err


def refused_before_training(code, err, fragment):
    assert code in (1, 2), err
    assert fragment in err, err
    assert "Traceback" not in err
    assert "Iteration 0" not in err and "Testing net" not in err, "the check must come before any work"


def test_snapshot_prefix_under_a_file_is_refused_at_once(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, err = run(["train", SOLVER, *QUICK, "--snapshot-prefix", tmp_path / "file" / "sub" / "x"], capsys)
    refused_before_training(code, err, f"{tmp_path / 'file'} is a file, not a folder")


def test_snapshot_folder_without_room_for_one_snapshot_is_refused(tmp_path, capsys, monkeypatch):
    real = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(snapshots.shutil, "disk_usage", lambda folder: real._replace(free=4096))
    code, err = run(["train", SOLVER, *QUICK, "--snapshot-prefix", tmp_path / "x"], capsys)
    refused_before_training(code, err, "one snapshot needs about")
    assert "0.0 MiB free in" in err


def test_unknown_lr_policy_is_refused_before_the_first_test(tmp_path, capsys):
    code, err = run(["train", SOLVER, *QUICK, "--lr-policy", "invv", "--test-interval", "1",
                     "--snapshot-prefix", tmp_path / "x"], capsys)
    refused_before_training(code, err, "solver.prototxt: unknown lr_policy 'invv'")


def test_lr_policy_parameters_are_checked_before_the_first_test(tmp_path, capsys):
    code, err = run(["train", SOLVER, *QUICK, "--lr-policy", "step", "--test-interval", "1",
                     "--snapshot-prefix", tmp_path / "x"], capsys)
    refused_before_training(code, err, "lr_policy \"step\" needs stepsize > 0")


@pytest.mark.parametrize("comm", ["rign", "ps"])
def test_comm_is_checked_on_one_process_as_under_mpi(tmp_path, capsys, comm):
    code, err = run(["train", SOLVER, *QUICK, "--comm", comm, "--snapshot-prefix", tmp_path / "x"], capsys)
    refused_before_training(code, err, "unknown communication strategy 'rign'" if comm == "rign" else "--comm ps needs at least 2")


def test_a_typo_in_a_bare_net_is_reported_at_the_nets_line(tmp_path, capsys):
    bad = tmp_path / "net.prototxt"
    text = open(NET).read()
    bad.write_text(text.replace("num_output", "num_outptu", 1))
    line = text[:text.index("num_output")].count("\n") + 1
    code, err = run(["train", bad, *QUICK], capsys)
    refused_before_training(code, err, f"net.prototxt:{line}:")
    assert 'no field named "num_outptu"' in err and "SolverParameter" not in err


@pytest.mark.parametrize("command", ["train", "test"])
def test_an_empty_weights_file_is_an_error(tmp_path, capsys, command):
    empty = tmp_path / "empty.caffemodel"
    empty.write_bytes(b"")
    args = ([command, SOLVER, *QUICK, "--snapshot-prefix", tmp_path / "x"] if command == "train"
            else [command, "--model", NET, "--iterations", "1"])
    code, err = run([*args, "--weights", empty], capsys)
    refused_before_training(code, err, "empty.caffemodel: holds no layers")


def test_weights_matching_no_layer_are_an_error_and_unmatched_layers_are_logged(tmp_path, capsys):
    other = caffe_pb2.NetParameter(name="other")
    layer = other.layer.add(name="fc_other", type="InnerProduct")
    layer.blobs.add(data=[1.0]).shape.dim.append(1)
    path = tmp_path / "other.caffemodel"
    path.write_bytes(other.SerializeToString())
    code, err = run(["train", SOLVER, *QUICK, "--weights", path, "--snapshot-prefix", tmp_path / "x"], capsys)
    refused_before_training(code, err, "no layer name matches a layer of net")
    assert "Ignoring source layer fc_other" in err


def test_snapshot_write_failure_names_the_file_and_keeps_the_previous_one(tmp_path, capsys, monkeypatch):
    real = snapshots.write_bytes
    calls = []

    def disk_full_on_the_second_state(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", path)
        real(path, data)

    monkeypatch.setattr(snapshots, "write_bytes", disk_full_on_the_second_state)
    code, err = run(["train", SOLVER, "--max-iter", "4", "--test-interval", "0", "--snapshot-every", "2",
                     "--snapshot-prefix", tmp_path / "x"], capsys)
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.startswith("firecaffe:")]
    assert len(lines) == 1 and "x_iter_4.solverstate: cannot write (No space left on device)" in lines[0], err
    assert "MiB free in" in lines[0] and "Traceback" not in err
    assert snapshots.latest(str(tmp_path / "x")) == str(tmp_path / "x_iter_2.solverstate")
    assert not (tmp_path / "x_iter_4.caffemodel").exists(), "no weights file without its state"


@pytest.mark.parametrize("fmt", ["BINARYPROTO", "HDF5"])
def test_a_full_disk_stops_training_with_the_previous_snapshot_resumable(tmp_path, launch, fmt):
    """A real small file system (tmpfs, needs root) fills up at the third snapshot; the line names
    the file whose write failed (with HDF5, the weights: h5py's multi-line error is cut to its first)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=700k", f"firecaffe-{uuid.uuid4().hex[:6]}", mount],
                      capture_output=True).returncode != 0:
        _required.missing("cannot mount a small tmpfs here (needs root, CAP_SYS_ADMIN in a container)")
    h5 = ".h5" if fmt == "HDF5" else ""
    try:
        done = launch(["python", "-m", "firecaffe", "train", SOLVER, "--max-iter", "8", "--test-interval", "0",
                       "--snapshot-every", "2", "--snapshot-prefix", mount / "x", "--snapshot-format", fmt],
                      timeout=120)
        assert done.returncode == 1, str(done)
        lines = [line for line in done.stderr.splitlines() if "firecaffe:" in line]
        assert len(lines) == 1 and "MiB free in" in lines[0], done.stderr
        assert "cannot write (No space left on device)" in lines[0], lines
        assert "HDF5-DIAG" not in done.stderr and "Traceback" not in done.stderr, done.stderr
        state = snapshots.latest(str(mount / "x"))
        assert state and state.endswith(f"x_iter_4.solverstate{h5}"), os.listdir(mount)
        failed = lines[0].split("snapshot ", 1)[1].split(":")[0]
        assert os.path.basename(failed) in os.listdir(mount) + [f"x_iter_6.caffemodel{h5}"], (failed, lines)
        resumed = launch(["python", "-m", "firecaffe", "train", SOLVER, "--max-iter", "5", "--test-interval", "0",
                          "--snapshot-prefix", tmp_path / "y", "--snapshot", state], timeout=120)
        assert resumed.returncode == 0, str(resumed)
    finally:
        subprocess.run(["umount", mount], capture_output=True)


def test_snapshot_keep_leaves_only_the_newest(tmp_path, capsys):
    code, err = run(["train", SOLVER, "--max-iter", "6", "--test-interval", "0", "--snapshot-every", "1",
                     "--snapshot-keep", "2", "--snapshot-prefix", tmp_path / "x"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"x_iter_{n}.{kind}{sidecar}" for n in (5, 6) for kind in ("caffemodel", "solverstate")
        for sidecar in ("", ".sha256")]


@pytest.mark.parametrize("flag, value, says", [
    ("--bucket-mb", "-1", "not a number of MB"), ("--bucket-mb", "0.000001", "below the smallest useful value"),
    ("--bucket-mb", "nan", "not a number of MB"), ("--bucket-mb", "inf", "not a number of MB"),
    ("--stall-timeout", "nan", "not a number of seconds"), ("--stall-timeout", "-5", "not a number of seconds")])
def test_nonsense_sizes_and_timeouts_are_refused_before_any_work(capsys, flag, value, says):
    """--bucket-mb -1 or 1e-6 made buckets of one value (each step ~1000x slower), nan a traceback;
    --stall-timeout nan turned the watchdog off without a word."""
    code, err = run(["train", SOLVER, *QUICK, flag, value], capsys)
    assert code == 2 and f"Invalid value for '{flag}'" in err and says in err, err
    assert "Traceback" not in err and "Iteration" not in err
