"""``launch``: run a command (under mpiexec or not) with a hard time limit; nothing outlives the test."""
import sys
from pathlib import Path

import pytest

from firecaffe.engine.testing import run_job

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def launch(args, ranks=None, timeout=60):
    """Run ``args`` (``python`` for the first word means this interpreter), under ``mpiexec -n ranks``
    if ranks is given, in a session of its own that is killed whole on timeout (the test then fails)."""
    args = [sys.executable if a == "python" else str(a) for a in args]
    return run_job(args, ranks=ranks, timeout=timeout, cwd=REPO)


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


@pytest.fixture(name="launch")
def launch_fixture():
    return launch
