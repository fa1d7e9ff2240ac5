"""Which ranks can still be reached over the network: named when a job stalls.

A rank whose node dropped off the network (a cable, a switch port, ``ip link
set ... down`` on an emulated node) makes the others wait in the reduction
forever: TCP takes many minutes to notice. The stall watchdog ends the job,
and with a ``Beacon`` per rank it also says which nodes no longer answer:
every rank listens on an ephemeral TCP port (a thread accepts and closes
connections), the ranks exchange host names, addresses and ports once at
start-up, and at a stall each rank tries to connect to every other rank's
beacon for a second or two. A peer that does not answer is unreachable from
here; one that answers is alive and reachable, whatever else is wrong.

The beacon also writes one byte before it closes: a peer whose kernel accepts
the connection but whose process sends nothing is stopped (SIGSTOP, a
debugger) or hung. ``PeerMonitor`` uses that all along, not only at a stall:
each rank probes the next one's beacon every few seconds and ends the job,
naming the peer, once it has not answered for DEAD_PEER_SECONDS (30 s): a node
whose link went down, or a stopped rank 0 or parameter server, is found in
about 30 s instead of after the stall timeout. A slow but healthy step does not
look dead: the beacon thread answers while the main thread computes, tests or
writes a snapshot.
"""
import fcntl
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

SIOCGIFADDR = 0x8915
DEAD_PEER_SECONDS = 30.0
PROBE_SECONDS = 5.0


def local_addresses():
    """This host's IPv4 addresses other than loopback, one per interface that has one."""
    found = []
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, struct.pack("256s", name[:15].encode()))
            except OSError:
                continue
            address = socket.inet_ntoa(packed[20:24])
            if not address.startswith("127."):
                found.append(address)
    finally:
        probe.close()
    return found


class Beacon:
    """A TCP listener on an ephemeral port that accepts and closes connections, in a daemon thread."""

    def __init__(self):
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("0.0.0.0", 0))
        self._socket.listen(64)
        self.port = self._socket.getsockname()[1]
        threading.Thread(target=self._serve, name="firecaffe-beacon", daemon=True).start()

    def card(self):
        """What the other ranks need to reach this one: ``(host name, addresses, port)``."""
        return socket.gethostname(), local_addresses(), self.port

    def _serve(self):
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            try:
                connection.sendall(b"!")        # alive: this process runs
            except OSError:
                pass
            connection.close()


def answers(card, timeout):
    """True if the beacon of ``card`` accepts a connection on any of its addresses within ``timeout``."""
    _, addresses, port = card
    for address in addresses:
        try:
            socket.create_connection((address, port), timeout=timeout).close()
            return True
        except OSError:
            continue
    return False


def probe(card, timeout):
    """``"ok"``, ``"unreachable"`` (no connection on any address) or ``"silent"`` (connected, but
    the process sent nothing within ``timeout``: stopped or hung)."""
    _, addresses, port = card
    for address in addresses:
        try:
            with socket.create_connection((address, port), timeout=timeout) as connection:
                connection.settimeout(timeout)
                try:
                    return "ok" if connection.recv(1) == b"!" else "silent"
                except OSError:
                    return "silent"
        except OSError:
            continue
    return "unreachable"


class PeerMonitor:
    """Probe the beacon of rank ``(me + 1) % P`` every PROBE_SECONDS in a daemon thread; call
    ``on_dead(rank, status, seconds)`` once it has not answered for ``limit`` seconds."""

    def __init__(self, cards, me, on_dead, limit=DEAD_PEER_SECONDS, period=PROBE_SECONDS):
        self.target = (me + 1) % len(cards)
        self.cards, self.on_dead, self.limit, self.period = cards, on_dead, limit, min(period, limit / 3)
        if self.target != me and cards[self.target] is not None:
            threading.Thread(target=self._watch, name="firecaffe-peer-monitor", daemon=True).start()

    def _watch(self):
        answered = time.monotonic()
        while True:
            time.sleep(self.period)
            status = probe(self.cards[self.target], self.period)
            now = time.monotonic()
            if status == "ok":
                answered = now
            elif now - answered >= self.limit:
                self.on_dead(self.target, status, now - answered)
                return


def unreachable(cards, skip=(), timeout=2.0):
    """Indices of the ``cards`` whose beacons do not answer (all probed at once), leaving out ``skip``."""
    targets = [i for i in range(len(cards)) if i not in skip and cards[i] is not None]
    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=min(32, len(targets))) as pool:
        replies = list(pool.map(lambda i: answers(cards[i], timeout), targets))
    return [i for i, ok in zip(targets, replies) if not ok]
