"""launch/overlap_table.py reads the training logs of overlap_links.sh into per-mode medians."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOG = """I1130 22:33:52.1 1 solver.py:137] Iteration {i} (0.75 iter/s, {s}s/1 iters), loss = 2.3
I1130 22:33:52.2 1 parallel.py:112] Iteration {i}, communication (ring, 4 workers) {c} ms, {h} ms hidden behind backward{cpu}
"""


def write(path, rows, cpu=None):
    text = "".join(LOG.format(i=i, s=s, c=c, h=h, cpu="" if cpu is None else f", {cpu} ms CPU in the bucket thread")
                   for i, (s, c, h) in enumerate(rows))
    path.write_text(text)


def test_table_pairs_each_iterations_time_with_its_communication_and_skips_warmup(tmp_path):
    # Iteration i's communication line pairs with the time logged at i + 1; iterations 0 and 1 are warm-up.
    write(tmp_path / "none.1.log", [(9.0, 999, 0), (9.0, 999, 0), (9.0, 400, 0), (1.6, 500, 0), (1.6, 0, 0)])
    write(tmp_path / "sleep.1.log", [(9.0, 999, 0), (9.0, 999, 0), (9.0, 700, 600), (1.2, 800, 700), (1.2, 0, 0)],
          cpu=25)
    out = subprocess.run([sys.executable, str(REPO / "launch/overlap_table.py"), str(tmp_path)],
                         capture_output=True, text=True, timeout=30, check=True).stdout.splitlines()
    none = out[1].split()
    sleep = out[2].split()
    assert none == ["none", "2", "1600", "450", "0", "450", "0", "0"]
    assert sleep == ["sleep", "2", "1200", "750", "650", "100", "87", "25"]
