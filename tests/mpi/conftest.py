"""``run_mpi``: launch a script under mpiexec from a test, with a hard time limit."""
import os
import sys
from pathlib import Path

import pytest

from firecaffe.engine.testing import run_job

from tests import _required

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def run_mpi(n, script_args, timeout=60, env=None):
    """Run ``mpiexec -n n python <script_args>`` from the repository root; fail the test on timeout.

    ``script_args[0]`` is a script path (relative names are looked up next to
    this file) or ``-m module``. ``env`` adds environment variables.
    """
    args = [str(arg) for arg in script_args]
    if args[0] != "-m" and not os.path.isabs(args[0]):
        args[0] = str(HERE / args[0])
    return run_job([sys.executable, *args], ranks=n, timeout=timeout, cwd=REPO, env=env)


@pytest.fixture(name="run_mpi")
def run_mpi_fixture():
    _required.mpi4py()
    return run_mpi
