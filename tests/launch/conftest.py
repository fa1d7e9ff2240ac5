"""``slurm_cluster``: a one-node SLURM started by launch/slurm/local-cluster.sh for the module."""
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests import _required

REPO = Path(__file__).resolve().parents[2]
LOCAL_CLUSTER = REPO / "launch" / "slurm" / "local-cluster.sh"
SBIN_PATH = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"


def free_port_pair():
    """A port p with p and p+1 free (slurmctld, slurmd), away from SLURM's defaults."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no two consecutive free ports on 127.0.0.1")


def pytest_configure(config):
    # also listed in pyproject.toml; registered here so this folder runs warning-free on its own
    config.addinivalue_line("markers", "slurm: needs SLURM and munge (.ci/install-slurm.sh); starts a local cluster")


class Cluster:
    def __init__(self, folder):
        self.folder = folder
        # without the SLURM_* of a job pytest may itself run in: srun would join that allocation
        outside = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SRUN_", "SBATCH_"))}
        self.env = dict(outside, PATH=SBIN_PATH, FIRECAFFE_SLURM_DIR=str(folder),
                        FIRECAFFE_SLURM_PORT=str(free_port_pair()), SLURM_CONF=str(folder / "slurm.conf"))

    def script(self, action, check=True):
        return subprocess.run(["bash", str(LOCAL_CLUSTER), action], env=self.env, capture_output=True,
                              text=True, timeout=60, check=check)

    def logs(self):
        """The daemons' logs, for a failure message."""
        text = []
        for log in sorted((self.folder / "log").glob("*.log")):
            text.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:]))
        return "\n".join(text)


@pytest.fixture(scope="module")
def slurm_cluster():
    """Start the local cluster (skip only where SLURM or munge is not installed); always stop it."""
    missing = [exe for exe in ("slurmctld", "slurmd", "sbatch", "srun", "munged", "mungekey")
               if shutil.which(exe, path=SBIN_PATH) is None]
    if missing:
        _required.missing(f"SLURM/munge not installed ({', '.join(missing)} missing): run .ci/install-slurm.sh "
                    "or apt-get install slurmctld slurmd slurm-client munge")
    if os.geteuid() != 0:
        _required.missing("the local SLURM cluster needs root (slurmd launches jobs as their user)")
    parent = Path(tempfile.mkdtemp(prefix="fc-slurm-"))  # short: munge's socket path must fit 108 bytes
    cluster = Cluster(parent / "cluster")
    try:
        started = cluster.script("start", check=False)
        assert started.returncode == 0, (f"local-cluster.sh start failed:\n{started.stderr}\n{cluster.logs()}")
        assert f"export SLURM_CONF={cluster.folder / 'slurm.conf'}" in started.stdout
        yield cluster
    finally:
        stopped = cluster.script("stop", check=False)
        shutil.rmtree(parent, ignore_errors=True)
        assert stopped.returncode == 0, stopped.stderr
