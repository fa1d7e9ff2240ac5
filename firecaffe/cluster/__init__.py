"""An emulated cluster on one machine: N network namespaces whose links have a known bandwidth.

``up`` makes the nodes and links (``links``), writes the state file naming
them (``state``) and the launcher script (``launch``); ``execute`` runs
mpiexec on the nodes; ``down`` removes exactly what the state file names.
``run`` is up, execute, down, and takes the cluster down whatever happens.
Needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN), iproute2 and MPICH's mpiexec.
"""
import contextlib
import os
import signal
import subprocess
import sys
import time

from ..errors import FirecaffeError
from . import launch, links
from . import state as cluster_state

DEFAULT_NAME = "fc"
MAX_NODES = 64


def up(nodes, rate, ppn=1, name=DEFAULT_NAME, mtu=links.DEFAULT_MTU, tcp=links.DEFAULT_TCP):
    """Make ``nodes`` nodes with links of ``rate`` (bits/s or text like 1G), ``ppn`` ranks each, frames of
    at most ``mtu`` bytes, TCP congestion control ``tcp`` inside the nodes (a warning on stderr where it
    cannot be set); the state."""
    cluster_state.check_name(name)
    if not 1 <= nodes <= MAX_NODES:
        raise FirecaffeError(f"--nodes {nodes}: give 1 to {MAX_NODES} nodes")
    if ppn < 1:
        raise FirecaffeError(f"--ppn {ppn}: give at least 1 rank per node")
    if not links.MTU_RANGE[0] <= mtu <= links.MTU_RANGE[1]:
        raise FirecaffeError(f"--mtu {mtu}: give {links.MTU_RANGE[0]} to {links.MTU_RANGE[1]} bytes "
                             "(1500 is Ethernet's, 9000 jumbo frames)")
    rate_bps = rate if isinstance(rate, int) else links.parse_rate(rate)
    links.check_tcp(tcp)
    missing = links.tools_missing()
    if missing:
        raise FirecaffeError(f"firecaffe cluster needs {', '.join(missing)} (iproute2, util-linux)")
    existing = cluster_state.load(name)
    if existing:
        raise FirecaffeError(f"cluster {name!r} is already up ({len(existing['nodes'])} nodes at "
                             f"{links.human_rate(existing['rate_bps'])}, made by pid {existing['pid']}): "
                             f"`firecaffe cluster down{_name_flag(name)}` first, or choose another --name")
    state = links.plan(name, nodes, rate_bps, ppn, mtu, tcp)
    links.check_free(state)
    try:
        cluster_state.save(state)
    except OSError as exc:
        raise FirecaffeError(f"cannot write the cluster state file {cluster_state.state_path(name)}: "
                             f"{exc.strerror}") from None
    try:
        links.make(state)
        launch.write_launcher(state)
        wait_for_links(state)
    except BaseException:
        down(name)
        raise
    state["complete"] = True
    cluster_state.save(state)
    if state.get("tcp_warning"):
        print(f"firecaffe: warning: {state['tcp_warning']}", file=sys.stderr, flush=True)
    return state


def down(name=DEFAULT_NAME):
    """Remove cluster ``name``: its namespaces (and their processes), links, bridge, state. False if none."""
    state = cluster_state.load(name)
    if state is None:
        return False
    links.unmake(state)
    cluster_state.remove(name)
    return True


def require(name=DEFAULT_NAME):
    """The state of cluster ``name``; a FirecaffeError if it is not up."""
    state = cluster_state.load(name)
    if state is None:
        raise FirecaffeError(f"no cluster {name!r} is up: `firecaffe cluster up --nodes N --link RATE"
                             f"{_name_flag(name)}` first")
    if not state.get("complete"):
        raise FirecaffeError(f"cluster {name!r} was not fully made (its `up` failed or is running): "
                             f"`firecaffe cluster down{_name_flag(name)}`")
    return state


class Stopped(KeyboardInterrupt):
    """SIGINT or SIGTERM to ``execute`` or ``run``: passed on to the job once; ``job_status`` is
    mpiexec's exit status once it has ended (negative: killed by that signal)."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.job_status = None


def execute(command, ranks=None, mpiexec_args=(), name=DEFAULT_NAME, timeout=None):
    """Run ``command`` under mpiexec on the nodes of cluster ``name``; its exit status.

    mpiexec runs in a process group of its own, so a stop signal reaches it once: SIGINT or SIGTERM
    to this process (the terminal's Ctrl-C included) is passed to mpiexec, which passes it to the
    ranks (firecaffe train snapshots and stops); the job is killed if it has not ended within
    STOP_GRACE_S, or at a second signal; then Stopped is raised. With a terminal on stdin the job's
    stdin is /dev/null (a process group in the background may not read the terminal).
    """
    if not command:
        raise FirecaffeError("give the command to run after --, e.g. -- python train.py")
    state = require(name)
    argv = launch.mpiexec_command(state, ranks, list(mpiexec_args), list(command))
    stdin = subprocess.DEVNULL if sys.stdin is not None and sys.stdin.isatty() else None
    with _stop_signals_raise():
        process = subprocess.Popen(argv, env=launch.job_environment(), stdin=stdin, process_group=0)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(process, signal.SIGTERM)
            raise FirecaffeError(f"the job ran past {timeout} s and was stopped") from None
        except Stopped as stop:
            stop.job_status = _stop(process, stop.signum)
            raise
        except BaseException:
            _stop(process, signal.SIGINT)
            raise


def run(command, nodes, rate, ppn=1, ranks=None, mpiexec_args=(), name=DEFAULT_NAME, timeout=None,
        mtu=links.DEFAULT_MTU, tcp=links.DEFAULT_TCP, on_up=None, on_down=None):
    """Up, execute, down: the cluster is taken down on exit, on error and on Ctrl-C. The job's status.
    ``on_up(state)`` and ``on_down()`` are told when the cluster is up and when it is down again."""
    with _stop_signals_raise():
        state = up(nodes, rate, ppn, name, mtu, tcp)
        if on_up is not None:
            on_up(state)
        try:
            return execute(command, ranks, mpiexec_args, name, timeout)
        finally:
            down(name)
            if on_down is not None:
                on_down()


def status(name=DEFAULT_NAME):
    """``(state, [(node, link state, sent bytes, received bytes)])`` of cluster ``name``."""
    state = require(name)
    rows = [(node, links.link_state(node), sent, received)
            for node, (sent, received) in zip(state["nodes"], links.link_bytes(state))]
    return state, rows


STOP_GRACE_S = 60            # for the ranks to finish an iteration and write the snapshot


def _stop(process, signum):
    """Pass ``signum`` to the job once and wait; kill its process group after STOP_GRACE_S or at a
    second signal. mpiexec's exit status."""
    if process.poll() is None:
        process.send_signal(signum)
        try:
            process.wait(timeout=STOP_GRACE_S)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


@contextlib.contextmanager
def _stop_signals_raise():
    """SIGINT and SIGTERM raise Stopped (so cleanups run), in the main thread only."""
    def stop(signum, frame):
        raise Stopped(signum)
    try:
        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _name_flag(name):
    return "" if name == DEFAULT_NAME else f" --name {name}"


def wait_for_links(state, timeout_s=5.0):
    """Wait until every node's link reports up (veths come up asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(links.link_state(node) in ("up", "unknown") for node in state["nodes"]):
            return
        time.sleep(0.05)
