"""launch/strong_table.py puts measured iteration times beside `firecaffe analyze --workers --profile`."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINE = "I1201 01:00:00.0 1 solver.py:148] Iteration {i} (1 iter/s, {s}s/1 iters), loss = 2.3\n"


def strong_table(folder):
    """launch/strong_table.py on ``folder``'s logs, LeNet's gradient, ring, 2 cores, 1e-7 s/byte links
    (this LeNet's gradient, 0.14 MiB, over a 2-node ring, n beta: about 15 ms)."""
    profile = folder / "profile.json"
    profile.write_text(json.dumps({"alpha_s": 0.0, "beta_s_per_byte": 1e-7, "gamma_s_per_byte": 0.0}))
    out = subprocess.run([sys.executable, str(REPO / "launch/strong_table.py"), str(folder),
                          str(REPO / "nets/lenet_digits/train_test.prototxt"), str(profile), "ring", "2"],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    return out


def test_table_compares_each_node_count_with_the_prediction_from_the_one_node_time(tmp_path):
    # 1 node: iterations 3.. take 2.0 s; 2 nodes: 1.3 s (iterations 1-2 are warm-up and left out).
    (tmp_path / "1.log").write_text("".join(LINE.format(i=i, s=s) for i, s in enumerate([9, 9, 9, 2.0, 2.0], 1)))
    (tmp_path / "2.log").write_text("".join(LINE.format(i=i, s=s) for i, s in enumerate([9, 9, 9, 1.3, 1.3], 1)))
    out = strong_table(tmp_path)
    rows = [line for line in out.stdout.splitlines() if line.startswith("| 2 |")]
    cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
    # predicted: 2000 / 2 + n beta; error against the measured 1300 ms; speedups 2000/1300 and 2000/predicted
    assert cells[1] == "1300"
    predicted = float(cells[2].split()[0])
    assert 1010 < predicted < 1030
    assert cells[3] == f"{(predicted - 1300) / 1300:+.0%}"
    assert cells[4] == "1.54"


def test_a_smaller_one_node_batch_splits_off_what_every_worker_pays(tmp_path):
    # t(B=128) = 2.0 s, t(b=16) = 0.4 s: f + 128 c = 2.0, f + 16 c = 0.4 -> c = 1/70 s, f = 0.4 - 16/70 s
    job = "I1201 01:00:00.0 1 job.py:22] Job: 1 rank(s) on 1 node(s), strategy none, global batch {b} (...)\n"
    for name, batch, s in (("1.log", 128, 2.0), ("1-small.log", 16, 0.4), ("2.log", 128, 1.3)):
        (tmp_path / name).write_text(job.format(b=batch) + "".join(LINE.format(i=i, s=s) for i in range(1, 6)))
    out = strong_table(tmp_path)
    fixed = 400 - 16 * 1000 / 70
    assert f"{fixed:.0f} ms of it fixed per worker" in out.stdout
    row = next(line for line in out.stdout.splitlines() if line.startswith("| 2 |"))
    compute = float(row.split("(")[1].split("+")[0])
    assert abs(compute - ((2000 - fixed) / 2 + fixed)) < 1       # 2 workers, 2 cores: the batch part halves
