"""An emulated cluster for the tests: ``make_cluster`` brings one up and always takes it down.

Needs root (namespaces, veths, a bridge, tc) and MPICH's mpiexec; the tests
skip, saying which, where these are missing (on CI, which has them, they fail).
Test clusters are named ``fct`` and keep their state in a folder of their own, so a user's cluster is never touched.
"""
import contextlib
import os
import shutil
import sys
from pathlib import Path

import pytest

from firecaffe import cluster as emulated
from firecaffe.cluster.links import NEEDS_RIGHTS, tools_missing
from firecaffe.engine.testing import run_job
from firecaffe.errors import FirecaffeError
from tests import _required

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
NAME = "fct"


@pytest.fixture(scope="session", autouse=True)
def cluster_state_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster-state")
    previous = os.environ.get("FIRECAFFE_CLUSTER_DIR")
    os.environ["FIRECAFFE_CLUSTER_DIR"] = str(folder)
    yield folder
    if previous is None:
        del os.environ["FIRECAFFE_CLUSTER_DIR"]
    else:
        os.environ["FIRECAFFE_CLUSTER_DIR"] = previous


def skip_unless_possible():
    if os.geteuid() != 0:
        _required.missing("emulated cluster tests need root (network namespaces, veth, bridge, tc)")
    missing = tools_missing()
    if missing:
        _required.missing(f"emulated cluster tests need {', '.join(missing)} (apt-get install iproute2 util-linux)")
    if shutil.which("mpiexec") is None:
        _required.missing("emulated cluster tests need MPICH's mpiexec (pip install 'firecaffe[mpich]')")


@contextlib.contextmanager
def make_cluster(nodes, rate, ppn=1, name=NAME, mtu=1500, tcp="reno"):
    """Bring a cluster up for a block and down after it, whatever happens; skip without the rights."""
    skip_unless_possible()
    try:
        state = emulated.up(nodes, rate, ppn, name, mtu, tcp)
    except FirecaffeError as exc:
        if str(exc) == NEEDS_RIGHTS:
            _required.missing(str(exc))
        raise
    try:
        yield state
    finally:
        emulated.down(name)


def cluster_job(args, timeout=90, name=NAME):
    """Run ``firecaffe cluster <args>`` (for exec: on cluster ``name``) in the repository, with a time limit."""
    return run_job([sys.executable, "-m", "firecaffe", "cluster", *[str(a) for a in args]], timeout=timeout,
                   cwd=REPO)
