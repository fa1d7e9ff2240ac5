"""Keep a data-parallel job from hanging, and say which rank is to blame.

Three guards, all started by ``firecaffe train`` under MPI (``install``):

* **Last words.** A rank killed outright (SIGKILL, the out-of-memory killer)
  cannot say anything, and MPICH's launcher then reports only a process id. So
  each rank starts a tiny watcher process that holds the read end of a pipe:
  the rank writes where it is (iteration and phase) into the pipe, and ``bye``
  when it ends normally or has already explained its failure. A watcher that
  sees the pipe close without ``bye`` prints ``rank R of P (pid N on HOST)
  died ..., last seen in ...``, or, when the rank had noted a signal
  (run/signals.py: SIGINT/SIGTERM from Ctrl-C, scancel, a time limit), that the
  launcher ended it after that signal. The launcher tears the rest of the job down.

* **Stall timeout** (``--stall-timeout SECONDS``). Before the gradient reduction
  every worker announces its arrival (a 4-byte message to worker 0) and enters
  a nonblocking barrier; a thread watches the deadline. A rank that waits
  longer than the timeout (in the arrival barrier or in the reduction itself)
  prints where it waits, with worker 0 naming the ranks that have not arrived,
  and the ranks whose nodes no longer answer over the network (``reachability``),
  and aborts the job (MPI_Abort).

* **Dead peers** (on whenever the stall timeout is): every rank, parameter
  servers included, runs a beacon and watches the next rank's
  (``reachability.PeerMonitor``); one silent for 30 s (or the stall timeout if
  smaller) is named, whether stopped (its rank 0 or a server) or cut off.
"""
import atexit
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np

from ..comm.tags import STALL_ARRIVAL as TAG_ARRIVAL
from . import last_words, mpi_util, reachability

GRACE_SECONDS = 2.0        # a rank other than worker 0 waits this long so that worker 0 names the missing

class LastWords:
    """This rank's last-words watcher (run/last_words.py, a process of its own) and the pipe to it.

    One per process, made by the command (``firecaffe train``) and handed to what speaks to the
    watcher: the signal handling, the stall watchdog, the snapshot hook. ``start`` once MPI says
    which rank this is; ``note`` where the rank is; ``disarm`` when it ends normally or has said
    why it fails (the watcher then stays quiet).
    """

    def __init__(self):
        self._pipe = None       # write end of the pipe, once started

    def start(self, rank, size, job_id=None):
        """Start the watcher (once). ``job_id`` is the same on every rank of the job."""
        if self._pipe is not None:
            return
        import tempfile
        job_id = job_id or f"{os.getpid()}-{time.time():.0f}"
        claim = os.path.join(tempfile.gettempdir(), f"firecaffe-died-{job_id}")
        read_end, write_end = os.pipe()
        who = f"rank {rank} of {size} (pid {os.getpid()} on {socket.gethostname()})"
        try:
            # run by its path, -I -S: the watcher imports nothing of firecaffe (nor NumPy) on each rank
            subprocess.Popen([sys.executable, "-I", "-S", last_words.__file__, str(read_end), who, claim],
                             pass_fds=(read_end,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             start_new_session=True)
        except OSError:
            os.close(write_end)
            return
        finally:
            os.close(read_end)
        self._pipe = write_end
        atexit.register(self.disarm)
        self._chain_excepthooks()

    def note(self, where):
        """Tell the watcher where this rank is now (one short line)."""
        if self._pipe is not None:
            try:
                os.write(self._pipe, (where.replace("\n", " ") + "\n").encode())
            except OSError:
                pass

    def disarm(self):
        """This rank ends normally or has reported its own failure: the watcher stays quiet."""
        if self._pipe is not None:
            self.note("bye")
            os.close(self._pipe)
            self._pipe = None

    def _chain_excepthooks(self):
        """An uncaught exception is reported by mpi_util.abort_on_error: keep the watcher quiet."""
        previous, previous_thread = sys.excepthook, threading.excepthook

        def hook(*args):
            self.disarm()
            previous(*args)

        def thread_hook(args):
            if args.exc_type is not SystemExit:
                self.disarm()
            previous_thread(args)

        sys.excepthook, threading.excepthook = hook, thread_hook


class NoWatchdog:
    """Stand-in when stall detection is off: ``guard`` only tells the last-words watcher."""

    def __init__(self, last_words):
        self.last_words = last_words

    def guard(self, what, iteration):
        self.last_words.note(f"iteration {iteration}, entered {what}")
        return contextlib.nullcontext()


class StallWatchdog:
    """Abort the job when a worker waits longer than ``timeout`` seconds at a guarded point.

    ``with watchdog.guard("the allreduce of the gradients", iteration): reduce()``
    first waits (nonblocking barrier) until every worker of ``comm`` has arrived,
    then runs the block; both waits are under the deadline.
    """

    def __init__(self, comm, timeout, strategy, last_words, failure_context, world=None, beacon=None):
        self.last_words = last_words
        self.comm = comm.Dup()              # heartbeats never mix with the gradient traffic
        self.timeout = float(timeout)
        self.strategy = strategy
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.world = world if world is not None else comm
        group = comm.Get_group()
        self.world_ranks = group.Translate_ranks(list(range(self.size)), self.world.Get_group())
        group.Free()
        self._beacon = beacon or reachability.Beacon()
        self._cards = self.comm.allgather(self._beacon.card())   # start-up metadata, not gradients
        failure_context.add(self._network_report)     # an MPI error from a lost link names it too
        self._arrivals = np.zeros(max(self.size, 1), np.int64)
        self._pending = []                   # worker 0: arrival receives of the current guard
        self._cond = threading.Condition()
        self._phase = None                   # (description, iteration, deadline) while guarded
        threading.Thread(target=self._watch, name="firecaffe-stall-watchdog", daemon=True).start()

    @contextlib.contextmanager
    def guard(self, what, iteration):
        self.last_words.note(f"iteration {iteration}, entered {what} ({self.strategy})")
        with self._cond:
            self._phase = (what, iteration, time.monotonic() + self.timeout, ["arriving"])
            self._cond.notify()
        try:
            self._arrive(iteration)
            self._phase[3][0] = "reducing"
            yield
        finally:
            with self._cond:
                self._phase = None

    def _arrive(self, iteration):
        from mpi4py import MPI
        mine = np.array([iteration], np.int64)
        if self.rank == 0:
            self._pending = [self.comm.Irecv(self._arrivals[r:r + 1], source=r, tag=TAG_ARRIVAL)
                             for r in range(1, self.size)]
            sent = []
        else:
            sent = [self.comm.Isend(mine, dest=0, tag=TAG_ARRIVAL)]
        self.comm.Ibarrier().Wait()
        MPI.Request.Waitall(self._pending + sent)

    def _watch(self):
        with self._cond:
            while True:
                phase = self._phase
                if phase is None:
                    self._cond.wait()
                    continue
                left = phase[2] - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                self._report(phase)

    def _report(self, phase):
        what, iteration, _, state = phase
        where = (f"firecaffe: rank {self.world.Get_rank()} of {self.world.Get_size()}: stalled: waited "
                 f"{self.timeout:g} s (--stall-timeout) in {what}, iteration {iteration} ({self.strategy})")
        if state[0] == "arriving" and self.rank == 0:
            missing = [self.world_ranks[r + 1] for r, req in enumerate(self._pending) if not req.Test()]
            where += (f"; rank(s) {', '.join(map(str, missing))} have not arrived" if missing
                      else "; every rank has arrived")
        elif state[0] == "arriving":
            where += "; not every rank has arrived (rank 0 names them)"
        else:
            where += "; every rank arrived, the reduction itself does not finish"
        where += self._network_report()
        self.last_words.disarm()
        if self.rank != 0:
            time.sleep(GRACE_SECONDS)       # worker 0, which can name the missing, speaks first
        # never returns to the loop to report again (MPI_Abort can return under --bucket-mb)
        mpi_util.say_and_abort(self.world, where + "; aborting the job\n", 3)


    def _network_report(self):
        """``; unreachable over the network: rank 2 (on node7)``, or nothing when every peer answers."""
        lost = reachability.unreachable(self._cards, skip={self.rank})
        if not lost:
            return ""
        if self.size > 2 and len(lost) == self.size - 1:
            return f"; no other rank answers over the network: this node ({self._cards[self.rank][0]}) is cut off"
        named = [(self.world_ranks[r], self._cards[r][0]) for r in lost]
        return "; unreachable over the network: " + ", ".join(f"rank {r} (on {host})" for r, host in named)


def install(sync, stall_timeout, last_words, failure_context):
    """Start the guards for this rank of a data-parallel job (``sync``: its DataParallel, being built):
    last words, the peer monitor; return the stall watchdog whose ``guard`` the step runs under
    (a NoWatchdog when off)."""
    world = sync.world
    job_id = world.bcast(f"{os.getpid()}-{time.time():.0f}" if world.Get_rank() == 0 else None, root=0)
    last_words.start(world.Get_rank(), world.Get_size(), job_id)
    last_words.note("start-up (building the net)" if sync.is_worker else "parameter server, serving the workers")
    if not stall_timeout or stall_timeout <= 0:
        return NoWatchdog(last_words)
    beacon = reachability.Beacon()
    cards = world.allgather(beacon.card() + (os.getpid(), "worker" if sync.is_worker else "parameter server"))
    reachability.PeerMonitor([card[:3] for card in cards], world.Get_rank(),
                             lambda peer, status, seconds: _peer_dead(world, cards[peer], peer, status, seconds,
                                                                      last_words),
                             limit=min(reachability.DEAD_PEER_SECONDS, stall_timeout))
    if sync.is_worker and sync.num_workers > 1:
        return StallWatchdog(sync.worker_comm, stall_timeout, sync.comm_name, last_words, failure_context,
                             world, beacon)
    return NoWatchdog(last_words)


def _peer_dead(world, card, peer, status, seconds, last_words):
    """The peer this rank watches has not answered its beacon for ``seconds``: end the job, naming it."""
    host, _, _, pid, role = card
    why = ("unreachable over the network (a link down, the node gone)" if status == "unreachable"
           else "its node answers, the process does not (stopped, SIGSTOP or a debugger, or hung)")
    last_words.disarm()
    mpi_util.say_and_abort(world, f"firecaffe: rank {world.Get_rank()} of {world.Get_size()}: rank {peer} "
                                  f"({role}, pid {pid} on {host}) has not answered for {seconds:.0f} s: {why}; "
                                  "aborting the job\n", 3)
