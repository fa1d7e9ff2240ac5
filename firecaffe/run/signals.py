"""Signals with Caffe's semantics, acted on by every rank at the same iteration.

Caffe's `caffe train` turns SIGINT and SIGHUP into solver actions
(``--sigint_effect stop``, ``--sighup_effect snapshot``) checked once per
iteration. firecaffe does the same, adds the two signals a cluster sends
(SIGTERM: ``scancel``, a SLURM time limit, mpiexec's Ctrl-C forwarding;
SIGUSR1: ``#SBATCH --signal=USR1@T``), both meaning *snapshot and stop*, and
makes the decision the job's, not the rank's:

* The signal is caught by a thread reading Python's wake-up pipe, so it is
  seen at once even while the main thread sits in a blocking MPI call; the
  thread only records it (and tells the last-words watcher). A second SIGINT
  ends the process at once (exit 130), as Caffe's second Ctrl-C does.
* At each iteration boundary every rank (workers and parameter servers, which
  count the same iterations) posts its recorded actions into a nonblocking
  bitwise-or allreduce on a communicator of its own and completes the one it
  posted one iteration earlier. So the decision reaches every rank at the same
  iteration, one step after the signal, and the collective runs behind a whole
  step of computation: nothing waits for it when nothing happened.
* Rank 0 writes the snapshot (the servers send their solver history the same
  iteration), every rank leaves the loop, and the job ends with one line from
  rank 0 and exit status 128 + the signal's number (130 SIGINT, 143 SIGTERM,
  138 SIGUSR1, 129 SIGHUP with ``--sighup-effect stop``).
"""
import os
import signal
import sys
import threading
import time

import numpy as np

from . import early_signals, held_output, mpi_util, watchdog

EFFECTS = ("stop", "snapshot", "none")
SNAPSHOT, STOP = 1, 2
_SIGNAL_SHIFT = 8            # bits 8 + signum record which signals were seen
CLUSTER_SIGNALS = ("SIGTERM", "SIGUSR1")


class Action:
    """What the job agreed to do at one iteration boundary."""

    def __init__(self, bits):
        self.bits = int(bits)

    @property
    def snapshot(self):
        return bool(self.bits & SNAPSHOT)

    @property
    def stop(self):
        return bool(self.bits & STOP)

    @property
    def signal_name(self):
        """The first signal (by number) that asked for this action, e.g. 'SIGINT'."""
        for number in range(1, 64):
            if self.bits >> (_SIGNAL_SHIFT + number) & 1:
                return signal.Signals(number).name
        return "a signal"

    @property
    def exit_code(self):
        name = self.signal_name
        return 128 + signal.Signals[name].value if name.startswith("SIG") else 1

    def __bool__(self):
        return bool(self.bits & (SNAPSHOT | STOP))


class Signals:
    """Install with ``install()``; ``connect(world)`` under MPI (collective); ``agree(it)`` each step."""

    def __init__(self, sigint_effect="stop", sighup_effect="snapshot", snapshot_on_stop=True, last_words=None,
                 ignore_after=()):
        for flag, value in (("--sigint-effect", sigint_effect), ("--sighup-effect", sighup_effect)):
            if value not in EFFECTS:
                raise ValueError(f"{flag} must be one of {', '.join(EFFECTS)}, got {value!r}")
        self.effects = {"SIGINT": sigint_effect, "SIGHUP": sighup_effect,
                        "SIGTERM": "snapshot-stop", "SIGUSR1": "snapshot-stop"}
        self.snapshot_on_stop = snapshot_on_stop       # Caffe: snapshot_after_train
        self.last_words = last_words if last_words is not None else watchdog.LastWords()   # this rank's watcher
        self.iteration = None                          # where the training loop is (for messages)
        self._once = self._kept = 0                    # snapshot requests / stop requests
        self._lock = threading.Lock()
        self._interrupts = 0
        self._comm = self._request = self._world = None
        self.stall_timeout = 0
        self._sent = np.zeros(1, np.int64)
        self._got = np.zeros(1, np.int64)
        self.last = Action(0)
        self._previous = {}
        self.ignore_after = tuple(ignore_after)        # signals left ignored by uninstall (``uninstall``)

    # --- catching ------------------------------------------------------------
    def install(self):
        """Route SIGINT, SIGHUP, SIGTERM, SIGUSR1 to this object (from the main thread; elsewhere a no-op)."""
        if threading.current_thread() is not threading.main_thread() or self._previous:
            return self
        read_end, self._wakeup = os.pipe()
        os.set_blocking(self._wakeup, False)
        # the wake-up pipe first: a signal that comes between the two steps is not lost
        self._previous_fd = signal.set_wakeup_fd(self._wakeup, warn_on_full_buffer=False)
        for name in self.effects:
            number = getattr(signal, name)
            self._previous[number] = signal.signal(number, _ignore)
        self._previous[signal.SIGPIPE] = signal.signal(signal.SIGPIPE, signal.SIG_IGN)   # EPIPE, not death
        threading.Thread(target=self._listen, args=(read_end,), name="firecaffe-signals", daemon=True).start()
        for number in early_signals.take():      # signals that came during start-up
            self.receive(number)
        return self

    def refresh(self):
        """Take the signals back after MPI_Init (MPICH's start-up sets some handlers of its own)."""
        if self._previous:
            for name in self.effects:
                signal.signal(getattr(signal, name), _ignore)
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def uninstall(self):
        """Give the signals back to their previous handlers (a command run inside another program),
        except those of ``ignore_after``, which stay ignored: `firecaffe train` as the process leaves
        SIGUSR1 ignored from here to its exit (MPI_Finalize, the interpreter's shutdown), since SLURM's
        time-limit warning arriving then has nothing left to stop, and dying of it (status 138) would
        make train.sbatch requeue a finished job."""
        if not self._previous:
            return
        held_output.release()
        signal.set_wakeup_fd(self._previous_fd)
        ignored = {getattr(signal, name) for name in self.ignore_after}
        for number, handler in self._previous.items():
            signal.signal(number, signal.SIG_IGN if number in ignored else handler)
        self._previous.clear()
        os.write(self._wakeup, b"\0")          # 0 is no signal: the listener ends
        os.close(self._wakeup)

    def _listen(self, fd):
        try:
            while True:
                data = os.read(fd, 64)
                for number in data:
                    if number == 0:
                        return
                    self.receive(number)
                if not data:
                    return
        finally:
            os.close(fd)

    def receive(self, number):
        """Record signal ``number`` (also callable directly, e.g. from tests)."""
        name = signal.Signals(number).name
        effect = self.effects.get(name, "none")
        where = f"iteration {self.iteration}" if self.iteration is not None else "start-up"
        self.last_words.note(f"signal {name} received at {where} (Ctrl-C, scancel, a time limit or kill)")
        if name == "SIGINT" and effect != "none":
            self._interrupts += 1
            if self._interrupts > 1:
                self.last_words.disarm()
                held_output.release()
                os.write(2, f"firecaffe: {_rank_prefix()}interrupted again at {where}: exiting at once, "
                            "no snapshot\n".encode())
                os._exit(130)
        bits = {"stop": STOP | (SNAPSHOT if self.snapshot_on_stop else 0), "snapshot": SNAPSHOT,
                "snapshot-stop": STOP | SNAPSHOT, "none": 0}[effect]
        if bits & STOP and self._previous:      # installed: this process's own signals
            held_output.hold()          # a pipe's reader (tee) may have died of the same Ctrl-C
        if bits:
            with self._lock:
                if bits & STOP:
                    self._kept |= bits | (1 << (_SIGNAL_SHIFT + number))
                else:
                    self._once |= bits | (1 << (_SIGNAL_SHIFT + number))

    def tell(self, where):
        """Tell this rank's last-words watcher where it is (the snapshot writer says so)."""
        self.last_words.note(where)

    # --- agreeing ------------------------------------------------------------
    def connect(self, world, stall_timeout=0):
        """Take a communicator of our own for the per-step agreement (collective over ``world``).

        A rank that waits longer than ``stall_timeout`` seconds (0: forever) for the
        agreement aborts the job, saying so, as the stall watchdog does for the reduction.
        """
        if world is not None and world.Get_size() > 1:
            self._comm = world.Dup()
            self._world = world
            self.stall_timeout = stall_timeout

    def agree(self, iteration):
        """The action every rank takes at ``iteration`` (called by every rank at every boundary)."""
        self.iteration = iteration
        with self._lock:
            mine = self._once | self._kept
            self._once = 0                      # a snapshot request is acted on once
        if self._comm is None:
            self.last = Action(mine)
            return self.last
        from mpi4py import MPI
        if self._request is None:
            decided = 0
        else:
            self._wait(iteration)
            decided = int(self._got[0])
        self._sent[0] = mine
        self._request = self._comm.Iallreduce(self._sent, self._got, op=MPI.BOR)
        self.last = Action(decided)
        return self.last

    def _wait(self, iteration):
        """Complete the agreement posted one boundary ago; it is almost always done already."""
        if self._request.Test() or not self.stall_timeout:
            self._request.Wait()
            return
        deadline = time.monotonic() + self.stall_timeout
        while not self._request.Test():
            if time.monotonic() > deadline:
                world = self._world
                self.last_words.disarm()
                mpi_util.say_and_abort(
                    world, f"firecaffe: rank {world.Get_rank()} of {world.Get_size()}: stalled: waited "
                           f"{self.stall_timeout:g} s (--stall-timeout) for the other ranks at the end of "
                           f"iteration {iteration - 1}; aborting the job\n", 3)
            time.sleep(0.0005)

    def close(self):
        """Complete the outstanding agreement (every rank posted the same number), then wait until
        every rank has come here: rank 0 comes after writing the last snapshot, so no rank ends
        (or dies of a signal the launcher forwards once it has ended) while that is being written.
        Launchers tear a job down when one of its processes dies of a signal; the handlers stay
        in place during the wait, so a signal arriving now is only recorded."""
        if self._request is not None:
            self._request.Wait()
            self._request = None
        if self._comm is not None:
            self.last_words.note(f"iteration {self.iteration}, training over: waiting for every rank "
                          "(rank 0 writes the last snapshot)")
            request = self._comm.Ibarrier()
            while not request.Test():        # polled, so that this thread never sits in MPI for long
                time.sleep(0.002)
        with self._lock:
            late = Action(self._once | self._kept)
        rank = self._comm.Get_rank() if self._comm is not None else 0
        if late and not self.last.stop and rank == 0:
            print(f"firecaffe: {late.signal_name} received as training ended (iteration {self.iteration}): "
                  "nothing to stop, the last snapshot is complete", file=sys.stderr, flush=True)


def _ignore(signum, frame):
    """The Python-level handler: the wake-up pipe carries the signal to the listener thread."""


def _rank_prefix():
    from .mpi_util import rank_prefix
    try:
        return rank_prefix()
    except Exception:
        return ""


def stopped_line(action, iteration, snapshot_path):
    """``stopped by SIGINT at iteration 792; snapshot snapshots/x_iter_792.solverstate``."""
    if snapshot_path:
        saved = f"snapshot {snapshot_path}"
    else:
        saved = "no snapshot written (snapshot_after_train: false)"
    return f"firecaffe: stopped by {action.signal_name} at iteration {iteration}; {saved}"


def finish(action, iteration, snapshot_path, is_root, last_words):
    """Print the job's one line (rank 0) and leave with the signal's exit status."""
    if is_root:
        sys.stderr.flush()
        print(stopped_line(action, iteration, snapshot_path), file=sys.stderr, flush=True)
    last_words.disarm()
    held_output.release()
    sys.exit(action.exit_code)
