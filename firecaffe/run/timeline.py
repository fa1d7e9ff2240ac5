"""`firecaffe train --timeline FILE.json`: a Chrome/Perfetto trace of training.

Records, as Trace Event Format "X" (complete) events, per rank: an event per
iteration, each layer's forward and backward, each gradient bucket's
reduction (on the reducer's own thread), the wait for the buckets, the
strategy's step and the solver's update. Horovod's timeline is the model; it
records per tensor the phases of its allreduce, here the unit is the bucket.

The recorder is an observer: it adds itself to the hooks of the Solver
(``iteration_start``, ``span`` of the update), of the train Net (pycaffe's
``before_forward``/``after_forward``/``before_backward``/``after_backward``)
and of the data-parallel step (``span``: buckets, their wait, reduce, publish).
Cost when off: an empty hook list per layer. After ``iters`` iterations it
removes its hooks, so the rest of the run costs nothing either.

Clocks: events are taken with ``perf_counter_ns`` (monotonic), mapped to
``time_ns`` once at start; every rank's offset to rank 0's wall clock is
measured with a few ping-pongs (the one with the shortest round trip wins,
NTP's rule), so ranks on different machines line up to within half a round trip.
At the end every rank sends its events, as JSON bytes through buffer calls, to
rank 0, which writes the one file.
"""
import json
import os
import threading
import time

import numpy as np

from ..core import backend
from ..comm import tags
from ..errors import FirecaffeError

PING_PONGS = 8
MAIN_TID = 0


class Timeline:
    """One rank's recorder; built on every rank (collective: clock offsets), then ``attach(solver)``,
    train, and ``write()`` (collective: rank 0 writes ``path``)."""

    def __init__(self, path, iters, world=None):
        self.path, self.iters, self.world = path, iters, world
        self.rank = world.Get_rank() if world is not None else 0
        if self.rank == 0:
            check_writable(path)
        self.events = []                   # (name, cat, start_ns, end_ns, tid, args)
        self.threads = {}                  # tid -> thread name
        self._tids = {}                    # threading ident -> tid
        self._perf0, self._wall0 = time.perf_counter_ns(), time.time_ns()
        self.offset_ns = measure_offset(world) if world is not None and world.Get_size() > 1 else 0
        self.origin_ns = self._wall0 - self.offset_ns
        if world is not None and world.Get_size() > 1:
            origin = np.array([self.origin_ns], dtype=np.int64)
            world.Bcast(origin, root=0)     # every rank counts from rank 0's start
            self.origin_ns = int(origin[0])
        self.role = "worker"
        self.solver = self.net = None
        self.iteration = None              # (number, start_ns) of the open iteration
        self.recorded = 0
        self.device_sync = None
        self._hooks = []
        self._began = 0

    # --- wiring ------------------------------------------------------------
    def attach(self, solver):
        """Hook into the solver's step, its train net's layers and its data-parallel step's spans."""
        self.solver = solver
        if backend.gpu_enabled():          # a layer's time is its kernels', not their launch (as `caffe time`)
            self.device_sync = backend.xp().cuda.Device().synchronize
        parallel = solver.parallel
        if parallel is not None and not parallel.is_worker:
            self.role = "parameter server"
        self._listen([(solver.hooks, "iteration_start", self._on_start), (solver.hooks, "span", self.add)]
                     + ([(parallel.hooks, "span", self.add)] if parallel is not None else []))
        self.watch_net(solver.net)

    def watch_net(self, net):
        """Record an event for each layer's forward and backward of ``net``."""
        self.net = net
        self._listen([(net.hooks, "before_forward", self._layer_began), (net.hooks, "after_forward", self._forward_done),
                      (net.hooks, "before_backward", self._layer_began),
                      (net.hooks, "after_backward", self._backward_done)])

    def _listen(self, hooks):
        for owner, name, fn in hooks:
            owner.add(name, fn)
        self._hooks.extend(hooks)

    def detach(self):
        """Stop recording: every hook removed, so the rest of the run pays nothing."""
        for hooks, name, fn in self._hooks:
            hooks.remove(name, fn)
        self._hooks = []

    def _on_start(self, iteration):
        now = time.perf_counter_ns()
        self._close_iteration(now)
        if self.recorded >= self.iters:
            self.detach()
            return
        self.iteration = (iteration, now)
        self.recorded += 1

    def _close_iteration(self, now):
        if self.iteration is not None:
            number, start = self.iteration
            self.add(f"iteration {number}", "iteration", start, now, {"iteration": number})
            self.iteration = None

    def _layer_began(self, i):
        self._began = time.perf_counter_ns()

    def _forward_done(self, i):
        self._layer_done(i, "forward", {})

    def _backward_done(self, i):
        self._layer_done(i, "backward", {"needs_backward": bool(self.net.layer_need_backward[i])})

    def _layer_done(self, i, cat, args):
        if self.device_sync is not None:
            self.device_sync()
        layer = self.net.layers[i]
        self.add(layer.name, cat, self._began, time.perf_counter_ns(), {"type": layer.type, **args})

    # --- recording ---------------------------------------------------------
    def add(self, name, cat, start_ns, end_ns, args=None):
        """One complete event on the calling thread (safe from the reducer's thread)."""
        ident = threading.get_ident()
        tid = self._tids.get(ident)
        if tid is None:            # tids 0 (main), 1, ... in order of first event
            thread = threading.current_thread()
            tid = MAIN_TID if thread is threading.main_thread() else 1 + sum(t != MAIN_TID for t in self.threads)
            self._tids[ident] = tid
            self.threads[tid] = "main" if tid == MAIN_TID else thread.name
        self.events.append((name, cat, start_ns, end_ns, tid, args))

    # --- the file ----------------------------------------------------------
    def trace_events(self):
        """This rank's events in Trace Event Format (ts, dur in microseconds)."""
        shift = self._wall0 - self._perf0 - self.offset_ns - self.origin_ns
        pid = self.rank
        out = [{"ph": "M", "name": "process_name", "pid": pid, "tid": MAIN_TID,
                "args": {"name": f"rank {self.rank}" + (f" ({self.role})" if self.role != "worker" else "")}},
               {"ph": "M", "name": "process_sort_index", "pid": pid, "tid": MAIN_TID,
                "args": {"sort_index": self.rank}}]
        for tid, name in self.threads.items():
            out.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": name}})
            out.append({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid, "args": {"sort_index": tid}})
        for name, cat, start, end, tid, args in self.events:
            event = {"ph": "X", "name": name, "cat": cat, "pid": pid, "tid": tid,
                     "ts": (start + shift) / 1e3, "dur": (end - start) / 1e3}
            if args:
                event["args"] = args
            out.append(event)
        return out

    def write(self):
        """Collective (every rank): rank 0 writes every rank's events to ``path`` and returns what it wrote
        (None on the other ranks)."""
        if self.iteration is not None:
            self._close_iteration(time.perf_counter_ns())
        mine = json.dumps(self.trace_events()).encode()
        world = self.world
        if world is None or world.Get_size() == 1:
            parts = [mine]
        else:
            parts = gather_bytes(world, mine)
        if self.rank != 0:
            return
        events = [event for part in parts for event in json.loads(part)]
        meta = {"ranks": len(parts), "iterations": self.recorded,
                "clock": "rank 0's wall clock at start = 0; per-rank offsets by ping-pong"}
        tmp = f"{self.path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump({"traceEvents": events, "displayTimeUnit": "ms", "otherData": meta}, f)
        os.replace(tmp, self.path)
        return (f"{len(events)} events of {len(parts)} rank(s) over {self.recorded} iteration(s) written to "
                f"{self.path} (open it in ui.perfetto.dev or chrome://tracing)")


def check_writable(path):
    """Before any work: the trace's folder exists and can be written."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FirecaffeError(f"--timeline {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise FirecaffeError(f"--timeline {path}: cannot write there")


def measure_offset(world):
    """This rank's wall clock minus rank 0's, in ns (0 on rank 0); collective.

    Rank 0 serves one peer at a time: the peer sends a ping at t1, rank 0 answers
    with its clock T, the answer lands at t2; offset = (t1 + t2) / 2 - T, taken
    from the round with the shortest round trip."""
    rank, size = world.Get_rank(), world.Get_size()
    stamp = np.zeros(1, dtype=np.int64)
    offset = 0
    for peer in range(1, size):
        if rank == 0:
            world.Send(stamp, dest=peer, tag=tags.TIMELINE_TURN)            # your turn
            for _ in range(PING_PONGS):
                world.Recv(stamp, source=peer, tag=tags.TIMELINE_PING)
                world.Send(np.array([time.time_ns()], dtype=np.int64), dest=peer, tag=tags.TIMELINE_PONG)
        elif rank == peer:
            world.Recv(stamp, source=0, tag=tags.TIMELINE_TURN)
            best_rtt = None
            for _ in range(PING_PONGS):
                sent = time.time_ns()
                world.Send(stamp, dest=0, tag=tags.TIMELINE_PING)
                world.Recv(stamp, source=0, tag=tags.TIMELINE_PONG)
                back = time.time_ns()
                if best_rtt is None or back - sent < best_rtt:
                    best_rtt, offset = back - sent, (sent + back) // 2 - int(stamp[0])
    return offset


def gather_bytes(world, data):
    """Every rank's bytes at rank 0 (a list there, None elsewhere), with buffer calls."""
    size = world.Get_size()
    sizes = np.zeros(size, dtype=np.int64)
    world.Gather(np.array([len(data)], dtype=np.int64), sizes, root=0)
    mine = np.frombuffer(data, dtype=np.uint8)
    if world.Get_rank() != 0:
        world.Gatherv(mine, None, root=0)
        return None
    whole = np.empty(int(sizes.sum()), dtype=np.uint8)
    world.Gatherv(mine, (whole, sizes), root=0)
    ends = np.cumsum(sizes)
    return [whole[end - n:end].tobytes() for n, end in zip(sizes, ends)]
