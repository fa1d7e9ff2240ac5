"""Emulated nodes and links: network namespaces on a Linux bridge, each link rate-limited by tbf.

Node i is the namespace ``<name>-n<i>`` holding ``eth0`` (address
198.18.S.(i+1)/24, in the benchmark range 198.18.0.0/15); the other end of
its veth pair, ``<name>-v<i>``, is a port of the bridge ``<name>-br``
(198.18.S.254, where mpiexec listens). A token bucket (``tc qdisc tbf``) on
both ends limits what the node sends (``eth0``) and what it receives (the
bridge port) to the link rate, so the bridge acts as a non-blocking switch
and every node has one full-duplex link of known bandwidth. The namespaces
have no default route: nothing leaves the machine.
"""
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from ..errors import FirecaffeError
from . import state as cluster_state

SUBNET = "198.18.{}."
BRIDGE_HOST = 254
NODE_IFACE = "eth0"
NEEDS_RIGHTS = ("firecaffe cluster needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to create network "
                "namespaces, veth pairs and a bridge: run it with sudo, or in CI as root "
                "(a container needs --cap-add NET_ADMIN --cap-add SYS_ADMIN)")
RATE_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}


def parse_rate(text):
    """Bits per second from ``100M``, ``100Mbit``, ``1G``, ``1gbit``, ``500k``, ``1e9`` (decimal units)."""
    match = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([kmg]?)(?:bit|bps|b/s|b)?\s*", str(text).lower())
    try:
        bits = float(match.group(1)) * RATE_UNITS[match.group(2)] if match else 0
    except ValueError:
        bits = 0
    if not bits >= 8000:
        raise FirecaffeError(f"link rate {text!r}: give bits per second of at least 8k, e.g. 100M or 1G")
    return int(bits)


def human_rate(bits):
    for unit, scale in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if bits >= scale:
            return f"{bits / scale:g} {unit}bit/s"
    return f"{bits} bit/s"


def _ip(*args, check=True):
    """Run ``ip``/``tc``; a FirecaffeError with its message (or the rights needed) on failure."""
    try:
        done = subprocess.run(list(args), capture_output=True, text=True)
    except FileNotFoundError:
        raise FirecaffeError(f"firecaffe cluster needs iproute2 ({args[0]!r} is not installed)") from None
    if check and done.returncode:
        message = done.stderr.strip() or done.stdout.strip()
        if "not permitted" in message.lower() or "permission denied" in message.lower():
            raise FirecaffeError(NEEDS_RIGHTS)
        raise FirecaffeError(f"`{' '.join(args)}` failed: {message}")
    return done


def _exists_link(name):
    return Path("/sys/class/net", name).exists()


def _namespaces():
    return {line.split()[0] for line in _ip("ip", "netns", "list").stdout.splitlines() if line.strip()}


def _free_subnet():
    """The first 198.18.S.0/24 that no interface and no other firecaffe cluster uses."""
    used = {int(s) for s in re.findall(r"inet 198\.18\.(\d+)\.", _ip("ip", "-4", "-o", "addr").stdout)}
    used |= {other["subnet"] for other in cluster_state.all_states()}
    for subnet in range(256):
        if subnet not in used:
            return subnet
    raise FirecaffeError("every 198.18.S.0/24 is in use: take a cluster down first")


DEFAULT_MTU = 1500          # Ethernet's; cluster fabrics often use jumbo frames (9000)
MTU_RANGE = (576, 65535)
# TCP congestion control inside the nodes. A loss-based one (reno; cubic where the host allows it)
# sees a token bucket as the link it stands for. BBR, the default of some hosts, does not: it
# estimates the bottleneck's bandwidth from delivery rates, and tbf hands over its burst at the
# veth's speed, so BBR read 14 Gb/s on a 100 Mb/s link, paced far above it, and large messages in
# lock-step exchanges (MPICH's Allreduce) ran at 1.2-1.3x the link's time (docs/scaling.md).
DEFAULT_TCP = "reno"
_PROC_TCP = Path("/proc/sys/net/ipv4")


def allowed_tcp():
    """Congestion controls a network namespace may choose (the host's allowed list; reno always)."""
    try:
        return (_PROC_TCP / "tcp_allowed_congestion_control").read_text().split() or [DEFAULT_TCP]
    except OSError:
        return [DEFAULT_TCP]


def check_tcp(name):
    """Refuse, before anything is made, a congestion control the nodes cannot use."""
    allowed = allowed_tcp()
    if name not in allowed:
        available = []
        try:
            available = (_PROC_TCP / "tcp_available_congestion_control").read_text().split()
        except OSError:
            pass
        hint = (f"; the kernel has it but the host allows namespaces only {', '.join(allowed)}: add it with "
                f"`sysctl -w net.ipv4.tcp_allowed_congestion_control=\"{' '.join(allowed + [name])}\"`"
                if name in available else f"; this host allows {', '.join(allowed)}")
        raise FirecaffeError(f"--tcp {name}: not a congestion control the nodes can use{hint}")


def plan(name, nodes, rate_bps, ppn, mtu=DEFAULT_MTU, tcp=DEFAULT_TCP):
    """The state of a cluster before anything is made: every name and address it will use."""
    subnet = _free_subnet()
    prefix = SUBNET.format(subnet)
    return {
        "name": name, "nodes": [
            {"index": i, "namespace": f"{name}-node{i}", "veth": f"{name}-v{i}", "hostname": f"{name}-node{i}",
             "address": f"{prefix}{i + 1}"} for i in range(nodes)],
        "bridge": f"{name}-br", "bridge_address": f"{prefix}{BRIDGE_HOST}", "subnet": subnet,
        "rate_bps": rate_bps, "ppn": ppn, "mtu": mtu, "tcp": tcp, "pid": os.getpid(), "made_at": time.time(), "complete": False,
    }


def check_free(state):
    """Refuse to touch namespaces or interfaces with this cluster's names that it did not make."""
    taken = [node["namespace"] for node in state["nodes"] if node["namespace"] in _namespaces()]
    taken += [link for link in [state["bridge"]] + [n["veth"] for n in state["nodes"]] if _exists_link(link)]
    if taken:
        raise FirecaffeError(f"{', '.join(taken)} already exist(s) but firecaffe cluster {state['name']!r} "
                             "did not make it (no state file): remove it yourself or use another --name")


def tbf(rate_bps, mtu=DEFAULT_MTU):
    """tc arguments for a token bucket at ``rate_bps``: a burst of a few ms, at least 64 KiB (one GSO packet)."""
    burst = max(64 * 1024, rate_bps // 8 * 4 // 1000, 4 * (mtu + 14))
    return ["tbf", "rate", f"{rate_bps}bit", "burst", str(burst), "latency", "50ms"]


def make(state):
    """Create the bridge, the namespaces and their rate-limited links listed in ``state``."""
    bridge = state["bridge"]
    mtu = str(state.get("mtu", DEFAULT_MTU))
    _ip("ip", "link", "add", bridge, "mtu", mtu, "type", "bridge")
    _ip("ip", "addr", "add", f"{state['bridge_address']}/24", "dev", bridge)
    _ip("ip", "link", "set", bridge, "up")
    shape = tbf(state["rate_bps"], int(mtu))
    for node in state["nodes"]:
        ns, veth = node["namespace"], node["veth"]
        _ip("ip", "netns", "add", ns)
        _ip("ip", "link", "add", veth, "mtu", mtu, "type", "veth", "peer", "name", NODE_IFACE, "mtu", mtu,
            "netns", ns)
        _ip("ip", "link", "set", veth, "master", bridge, "up")
        _ip("ip", "-n", ns, "addr", "add", f"{node['address']}/24", "dev", NODE_IFACE)
        _ip("ip", "-n", ns, "link", "set", NODE_IFACE, "up")
        _ip("ip", "-n", ns, "link", "set", "lo", "up")
        _set_tcp(state, ns)
        _ip("tc", "qdisc", "replace", "dev", veth, "root", *shape)
        _ip("tc", "-n", ns, "qdisc", "replace", "dev", NODE_IFACE, "root", *shape)


def _set_tcp(state, ns):
    """Make ``state["tcp"]`` the congestion control of namespace ``ns``; where /proc/sys cannot be written
    (a container that mounts it read-only), keep what the node has and say so in ``state["tcp_warning"]``."""
    wanted = state.get("tcp", DEFAULT_TCP)
    have, why = _node_sysctl(ns, "tcp_congestion_control", wanted)
    if have != wanted:
        state["tcp"] = have
        state["tcp_warning"] = (f"the nodes run TCP {have}, not {wanted} ({why}): a model-based one such as "
                                "BBR misreads the token bucket's bursts (docs/launch.md)")
    # A connection idle for longer than its retransmission timeout starts again from the initial
    # window. On a real fabric regaining the window takes microseconds; on a link 100x slower whose
    # queue holds 50 ms it takes tens of ms per restart, and a lock-step algorithm (MPICH's
    # Rabenseifner: 8 exchanges on 16 nodes, each on a connection idle since the last) pays it every step.
    state["tcp_restart_after_idle"] = _node_sysctl(ns, "tcp_slow_start_after_idle", "0")[0] != "0"


def _node_sysctl(ns, key, value):
    """Write ``value`` to net.ipv4.``key`` inside namespace ``ns``; ``(the value it has now, why not)``."""
    path = _PROC_TCP / key
    tried = _ip("ip", "netns", "exec", ns, "sh", "-c", f"echo {value} > {path}", check=False)
    have = _ip("ip", "netns", "exec", ns, "cat", str(path), check=False).stdout.strip() or "unknown"
    why = tried.stderr.strip().splitlines()[-1] if tried.stderr.strip() else "the kernel kept its own"
    return have, why


def unmake(state):
    """Remove what ``state`` names and still exists; end the processes left inside its namespaces."""
    present = _namespaces()
    for node in state["nodes"]:
        if node["namespace"] in present:
            _end_processes(node["namespace"])
            _ip("ip", "netns", "del", node["namespace"], check=False)
    for link in [n["veth"] for n in state["nodes"]] + [state["bridge"]]:
        if _exists_link(link):
            _ip("ip", "link", "del", link, check=False)
    left = [n["namespace"] for n in state["nodes"] if n["namespace"] in _namespaces()]
    left += [link for link in [state["bridge"]] + [n["veth"] for n in state["nodes"]] if _exists_link(link)]
    if left:
        raise FirecaffeError(f"could not remove {', '.join(left)}: remove by hand (`ip netns del`, `ip link del`)")


def _end_processes(namespace, grace_s=2.0):
    """SIGTERM, then SIGKILL, the processes still running in ``namespace`` (the cluster's own jobs)."""
    def pids():
        return [int(p) for p in _ip("ip", "netns", "pids", namespace, check=False).stdout.split()]
    for pid in pids():
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids():
        _signal(pid, signal.SIGKILL)


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def link_bytes(state):
    """``[(sent, received)]`` bytes per node since its link was made, read on the bridge side."""
    counts = []
    for node in state["nodes"]:
        stats = Path("/sys/class/net", node["veth"], "statistics")
        try:
            # The bridge port receives what the node sends and transmits what it receives.
            counts.append((int((stats / "rx_bytes").read_text()), int((stats / "tx_bytes").read_text())))
        except OSError:
            counts.append((None, None))
    return counts


def link_state(node):
    """"up" or "down": whether the node's link carries traffic (``ip link set ... down`` cuts it)."""
    try:
        return Path("/sys/class/net", node["veth"], "operstate").read_text().strip()
    except OSError:
        return "missing"


def tools_missing():
    return [tool for tool in ("ip", "tc", "unshare") if shutil.which(tool) is None]
