"""Snapshots are never lost: a job killed while writing one leaves the previous one intact;
--snapshot / --resume-latest with truncated, foreign or incomplete files say so clearly."""
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from firecaffe import cli
from firecaffe.solvers import Solver, snapshot as snapshots
from firecaffe.proto import io

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def solver(prefix, max_iter=4):
    param = io.read_solver("nets/lenet_digits/solver.prototxt")
    param.display = param.test_interval = 0
    del param.test_iter[:]
    param.snapshot, param.snapshot_prefix, param.max_iter = 2, str(prefix), max_iter
    return Solver(param)


@pytest.mark.parametrize("freeze_at, which, kept", [(9, "weights", 2), (13, "solver state", 2),
                                                    (15, "state's checksum", 4)])
def test_a_job_killed_while_writing_a_snapshot_keeps_the_previous_one(tmp_path, freeze_at, which, kept):
    """Each atomic write fsyncs the file, then its folder; a snapshot is four writes (weights, their
    checksum, state, its checksum): fsyncs 1-8 finish snapshot 2, fsync 9 is inside snapshot 4's
    weights (written, not yet renamed), 13 inside its state; at 15 the state is in place but not yet
    its checksum: snapshot 4 is complete and taken as it is."""
    prefix = tmp_path / "lenet"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen([sys.executable, HERE / "snapshot_writer.py", prefix, str(freeze_at)], cwd=REPO,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        assert child.stdout.readline().strip() == "FROZEN", child.stderr.read()
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate(timeout=30)
    found = snapshots.latest(str(prefix))
    assert found == f"{prefix}_iter_{kept}.solverstate", f"{which}: {sorted(os.listdir(tmp_path))}"
    resumed = solver(prefix)
    resumed.restore(found)
    assert resumed.iter == kept
    assert (tmp_path / "lenet_iter_4.solverstate").exists() == (kept == 4)


@pytest.fixture(scope="module")
def four_snapshots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("snaps")
    solver(folder / "lenet", max_iter=4).solve()
    return folder


def copy_of(folder, tmp_path):
    target = tmp_path / "snaps"
    shutil.copytree(folder, target)
    return target / "lenet"


def test_resume_latest_finds_the_newest_complete_snapshot(four_snapshots, tmp_path):
    prefix = copy_of(four_snapshots, tmp_path)
    assert snapshots.latest(str(prefix)) == f"{prefix}_iter_4.solverstate"
    os.remove(f"{prefix}_iter_4.caffemodel")        # newest state without its weights: skipped
    assert snapshots.latest(str(prefix)) == f"{prefix}_iter_2.solverstate"


def fail_through_cli(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("firecaffe:")]


TRAIN = ["train", "nets/lenet_digits/solver.prototxt", "--max-iter", "6", "--test-interval", "0", "--display", "0"]


@pytest.mark.parametrize("damage", ["truncated state", "truncated weights"])
def test_resume_latest_reports_a_truncated_newest_snapshot(four_snapshots, tmp_path, capsys, damage, monkeypatch):
    """Snapshots without checksums (Caffe's, or an older firecaffe's): the damage is reported, not skipped."""
    monkeypatch.chdir(REPO)
    prefix = copy_of(four_snapshots, tmp_path)
    for sidecar in Path(prefix).parent.glob("*.sha256"):
        sidecar.unlink()
    victim = Path(f"{prefix}_iter_4.{'solverstate' if damage == 'truncated state' else 'caffemodel'}")
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    lines = fail_through_cli(TRAIN + ["--resume-latest", str(prefix), "--snapshot-prefix", str(prefix)], capsys)
    assert len(lines) == 1 and victim.name in lines[0], lines
    assert "truncated" in lines[0] or "not a readable" in lines[0] or "cannot" in lines[0], lines


@pytest.mark.parametrize("content", [b"", b"\x00\x01garbage\xff" * 10, b'name: "a prototxt, not a state"\n'])
def test_snapshot_of_a_truncated_or_foreign_file_says_so(tmp_path, capsys, content, monkeypatch):
    monkeypatch.chdir(REPO)
    bad = tmp_path / "bad_iter_3.solverstate"
    bad.write_bytes(content)
    lines = fail_through_cli(TRAIN + ["--snapshot", str(bad)], capsys)
    assert len(lines) == 1 and f"snapshot {bad}" in lines[0], lines


def test_snapshot_of_a_foreign_hdf5_file_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    lines = fail_through_cli(TRAIN + ["--snapshot", "tests/bad_input/no_dataset.h5"], capsys)
    assert len(lines) == 1 and "tests/bad_input/no_dataset.h5" in lines[0] and "not a solver state" in lines[0]


def test_snapshot_of_a_missing_file_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    lines = fail_through_cli(TRAIN + ["--snapshot", str(tmp_path / "nope.solverstate")], capsys)
    assert lines == [f"firecaffe: error: snapshot {tmp_path / 'nope.solverstate'}: no such file"]


def test_resume_continues_exactly(four_snapshots, tmp_path):
    prefix = copy_of(four_snapshots, tmp_path)
    whole = solver(tmp_path / "whole", max_iter=4)
    whole.solve()
    resumed = solver(tmp_path / "resumed", max_iter=4)
    resumed.solve(f"{prefix}_iter_2.solverstate")
    np.testing.assert_array_equal(resumed.net.param_arena, whole.net.param_arena)
