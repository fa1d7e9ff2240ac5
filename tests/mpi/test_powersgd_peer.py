"""Our PowerSGD against PyTorch's DDP powerSGD_hook on the same gradients (benchmarks/powersgd_peer.py):
the same bytes on the wire and the same error of the sum, step after step (PyTorch is an oracle here,
never a dependency: without it the test is skipped, and the benchmark says so in its table)."""
import json
import sys
from pathlib import Path

import pytest

from firecaffe.engine.testing import run_job

pytestmark = pytest.mark.mpi
REPO = Path(__file__).resolve().parents[2]


def test_powersgd_matches_pytorchs_hook_in_bytes_and_error(tmp_path):
    pytest.importorskip("torch", reason="PyTorch (the peer) is not installed")
    out = tmp_path / "peer.json"
    done = run_job([sys.executable, "benchmarks/powersgd_peer.py", "--net", "nets/lenet_digits/train_test.prototxt",
                    "--steps", "6", "--json", out], ranks=2, timeout=240, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    ours, theirs = result["firecaffe"], result["torch"]
    # the one difference: torch leaves a matrix whole unless compressing halves it (min_compression_rate 2):
    # conv1's 20 x 9 would go as (20 + 9) 4 = 116 numbers instead of 180; ours sends the 116
    assert theirs["bytes_per_step"] - ours["bytes_per_step"] == 4 * (20 * 9 - (20 + 9) * 4)
    assert ours["bytes_per_step"] < result["float32_bytes"] / 5
    assert len(ours["errors"]) == len(theirs["errors"]) == 4
    for mine, peer in zip(ours["errors"], theirs["errors"]):
        assert 0.02 < mine < 1 and abs(mine - peer) < 0.05 * peer          # two implementations, one method
    assert ours["errors"][-1] < ours["errors"][0]                        # warm start: the error falls


def test_the_table_comes_back_from_the_json(tmp_path):
    result = {"net": "n.prototxt", "parameters": 2, "float32_bytes": 4000, "rank": 4, "steps": 6,
              "date": "2026-12-07 05:00 UTC", "load": 1.0,
              "firecaffe": {"bytes_per_step": 400, "errors": [0.5, 0.25]}, "torch": {"skipped": "PyTorch not installed"}}
    (tmp_path / "r.json").write_text(json.dumps(result))
    done = run_job([sys.executable, "benchmarks/powersgd_peer.py", "--from", tmp_path / "r.json"], timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "| firecaffe | 400 | 0.1000 | 0.5000 / 0.2500 / 0.3750 |" in done.stdout
    assert "| PyTorch DDP powerSGD_hook | PyTorch not installed |" in done.stdout
