"""launch/compress_convergence.py --from: the table (and the figure's data) again from the logs --logs kept."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "launch/compress_convergence.py"


def kept(folder, codec, accuracy, loss, wall):
    header = {"command": "train S", "ranks": 4, "comm": "tree", "solver": "squeezenet-digits", "extra": [],
              "wall_s": wall}
    log = (f"I1207 01:00:00.0 1 solver.py:131] Iteration 990 (1 iter/s, 0.1s/10 iters), loss = {loss}\n"
           f"I1207 01:00:00.0 1 solver.py:254]     Test net output #0: accuracy_top1 = 0.5\n"
           f"I1207 01:00:00.0 1 solver.py:254]     Test net output #0: accuracy_top1 = {accuracy}\n")
    (folder / f"{codec.replace(':', '_')}.log").write_text(f"compress_convergence.py: {json.dumps(header)}\n{log}")


def test_the_table_comes_back_from_the_kept_logs(tmp_path):
    kept(tmp_path, "none", 0.975, 0.002, 40.0)
    kept(tmp_path, "fp16", 0.9722, 0.003, 41.0)
    kept(tmp_path, "powersgd:4", 0.95, 0.004, 42.0)
    png = tmp_path / "loss.png"
    out = subprocess.run([sys.executable, str(SCRIPT), "--from", str(tmp_path), "--plot", str(png)],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "squeezenet-digits, 4 ranks, --comm tree"
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")] for line in lines[3:]}
    assert list(rows) == ["none", "fp16", "powersgd:4"]                    # none first, whatever the names
    assert rows["fp16"][1:5] == ["97.22%", "-0.28", "within 0.3", "yes"]
    assert rows["powersgd:4"][2:5] == ["-2.50", "within 1.0", "**no**"]
    assert rows["powersgd:4"][5] == "72.50% (-1.25)" and rows["powersgd:4"][7] == "42"
    from firecaffe.insight.bench.plot import figure_data
    drawn = figure_data(png)
    assert [curve["codec"] for curve in drawn["curves"]] == ["none", "fp16", "powersgd:4"]


def test_a_folder_without_the_uncompressed_run_is_refused(tmp_path):
    kept(tmp_path, "fp16", 0.9722, 0.003, 41.0)
    out = subprocess.run([sys.executable, str(SCRIPT), "--from", str(tmp_path)],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode != 0 and "no none.log" in out.stderr


def test_squeezenet_cifar_is_its_own_net_and_solver_cut_short(tmp_path, monkeypatch):
    import runpy

    import pytest

    from firecaffe.proto import io
    script = runpy.run_path(str(SCRIPT), run_name="compress_convergence")
    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit, match="make_data.py"):          # no HDF5 lists there yet
        script["squeezenet_cifar"](tmp_path, tmp_path / "data", 90)
    (tmp_path / "data").mkdir()
    for name in ("cifar10_train_h5.txt", "cifar10_test_h5.txt"):
        (tmp_path / "data" / name).write_text("x.h5\n")
    solver = io.read_solver(script["squeezenet_cifar"](tmp_path, tmp_path / "data", 90))
    assert (solver.max_iter, solver.test_interval, solver.snapshot, solver.test_iter) == (90, 30, 0, [100])
    net = io.read_net(solver.net)
    sources = sorted(layer.hdf5_data_param.source for layer in net.layer if layer.type == "HDF5Data")
    assert sources == [str((tmp_path / "data" / n).resolve()) for n in ("cifar10_test_h5.txt", "cifar10_train_h5.txt")]
    assert net.name == io.read_net(str(REPO / "nets/squeezenet_cifar/train_val.prototxt")).name
