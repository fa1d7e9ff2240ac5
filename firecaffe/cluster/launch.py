"""Running MPI jobs on the emulated nodes: hydra's ssh launcher, pointed at a script that enters a namespace.

``mpiexec -launcher ssh -launcher-exec SCRIPT -iface BRIDGE -hosts A1:K,A2:K,...``
starts one hydra proxy per node by calling SCRIPT like ssh (``[options] HOST
COMMAND``). The script, written by `up`, maps the node's address to its
namespace and runs the command there in a UTS namespace of its own with the
node's hostname, so MPI sees N hosts: ranks on one node share memory, ranks
on different nodes talk over TCP (libfabric's tcp provider through MPICH's
ofi netmod) through the rate-limited links. Without that environment MPICH
would find every rank on one machine and bypass the links.
"""
import os
import shlex
import shutil

from ..errors import FirecaffeError
from . import state as cluster_state
from .links import NODE_IFACE

# The environment that makes MPICH use the links (kept if the user set them otherwise).
LINK_ENV = {"MPICH_CH4_NETMOD": "ofi", "FI_PROVIDER": "tcp", "FI_TCP_IFACE": NODE_IFACE}

SCRIPT = """#!/bin/sh
# Written by `firecaffe cluster up` for cluster {name}; removed by `firecaffe cluster down`.
# hydra calls it like ssh: [options] HOST COMMAND. It runs COMMAND on the node with address HOST.
while [ $# -gt 0 ]; do case "$1" in -*) shift;; *) break;; esac; done
host=$1; shift
case "$host" in
{cases}
  *) echo "firecaffe cluster {name}: no node has address $host" >&2; exit 255;;
esac
exec ip netns exec "$ns" unshare --uts sh -c 'hostname "$0" && exec sh -c "$1"' "$node" "$*"
"""


def write_launcher(state):
    """Write the ssh-like script for ``state`` and return its path."""
    cases = "\n".join(f"  {node['address']}) ns={node['namespace']}; node={node['hostname']};;"
                      for node in state["nodes"])
    path = cluster_state.launcher_path(state["name"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SCRIPT.format(name=state["name"], cases=cases))
    path.chmod(0o755)
    return path


def mpiexec_command(state, ranks, mpiexec_args, command):
    """The mpiexec command line that runs ``command`` as ``ranks`` ranks, ``ppn`` per node in node order."""
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        raise FirecaffeError("firecaffe cluster exec needs mpiexec (MPICH's hydra): pip install mpich")
    nodes, ppn = state["nodes"], state["ppn"]
    capacity = len(nodes) * ppn
    if ranks is None:
        ranks = capacity
    if not 1 <= ranks <= capacity:
        raise FirecaffeError(f"-n {ranks}: cluster {state['name']!r} has {len(nodes)} node(s) x {ppn} rank(s) "
                             f"per node = {capacity} slots")
    hosts = ",".join(f"{node['address']}:{ppn}" for node in nodes)
    launcher = cluster_state.launcher_path(state["name"])
    return [mpiexec, "-launcher", "ssh", "-launcher-exec", str(launcher), "-iface", state["bridge"],
            "-hosts", hosts, "-n", str(ranks), *mpiexec_args, *command]


def job_environment(base=None):
    """The job's environment: MPICH over the links (LINK_ENV), unless the user set those otherwise."""
    env = dict(os.environ if base is None else base)
    for key, value in LINK_ENV.items():
        env.setdefault(key, value)
    return env


def describe(command):
    return " ".join(shlex.quote(part) for part in command)
