"""docs/usage.md's `bench` and `design` commands run as written (paths under /tmp/udoc moved into
a temporary folder; `firecaffe` and `mpirun` are this checkout's module and mpiexec)."""
import re
import shlex
import sys
from pathlib import Path

import pytest

from firecaffe.engine.testing import run_job

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.mpi, pytest.mark.timeout(600)]


def documented_block(heading):
    text = (REPO / "docs" / "usage.md").read_text()
    section = text[text.index(heading):]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


def test_the_bench_and_design_commands_run_as_written(tmp_path):
    pytest.importorskip("mpi4py")
    for line in documented_block("## `firecaffe bench` and `firecaffe design`").splitlines():
        words = shlex.split(line.replace("/tmp/udoc", str(tmp_path)), comments=True)
        if not words:
            continue
        ranks = None
        if words[0] == "mpirun":
            ranks, words = int(words[2]), words[3:]
        if words[0] == "mkdir":
            Path(words[-1]).mkdir(parents=True, exist_ok=True)
            continue
        assert words[0] == "firecaffe", line
        done = run_job([sys.executable, "-m", "firecaffe", *words[1:]], ranks=ranks, timeout=300, cwd=REPO)
        assert done.returncode == 0, f"{line}\n{done.stderr[-3000:]}"
    assert (tmp_path / "profile.json").exists() and (tmp_path / "sweep" / "README.md").exists()
