"""The small file that names what a cluster made, so that `down` removes exactly that.

One JSON file per cluster name in the state folder: ``$FIRECAFFE_CLUSTER_DIR``
if set, else ``/run/firecaffe`` for root, else ``$XDG_RUNTIME_DIR/firecaffe``.
It is written before anything is created and rewritten as each namespace,
veth or bridge is made, so a cluster that failed half-way up is still
listed, and `down` finds it.
"""
import json
import os
import re
from pathlib import Path

from ..errors import FirecaffeError
from ..core.options import environment

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]{0,5}$")  # short: interface names stop at 15 characters


def state_dir():
    """The folder that holds the state files (not created here)."""
    given = environment().cluster_dir          # FIRECAFFE_CLUSTER_DIR
    if given:
        return Path(given)
    if os.geteuid() == 0:
        return Path("/run/firecaffe")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "firecaffe" if runtime else Path("/tmp") / f"firecaffe-{os.getuid()}"


def check_name(name):
    if not NAME_PATTERN.match(name):
        raise FirecaffeError(f"cluster name {name!r}: use 1 to 6 lower-case letters and digits, "
                             "starting with a letter (it prefixes interface names)")
    return name


def state_path(name):
    return state_dir() / f"{check_name(name)}.json"


def launcher_path(name):
    """The ssh-like script hydra runs to start a process on a node."""
    return state_dir() / f"{check_name(name)}-enter.sh"


def load(name):
    """The state of cluster ``name``, or None if it is not up."""
    path = state_path(name)
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise FirecaffeError(f"cluster state file {path} is unreadable ({exc}): remove it by hand "
                             "after checking `ip netns list`") from None


def save(state):
    """Write ``state`` atomically (a half-written file would hide what was made)."""
    path = state_path(state["name"])
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp")
    with open(temp, "w") as handle:
        json.dump(state, handle, indent=1)
    os.replace(temp, path)


def remove(name):
    for path in (state_path(name), launcher_path(name)):
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def all_states():
    """The states of every cluster in the state folder."""
    folder = state_dir()
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.json")):
        if NAME_PATTERN.match(path.stem):
            state = load(path.stem)
            if state:
                found.append(state)
    return found
