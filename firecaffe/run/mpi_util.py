"""Where this process stands in an MPI job, and how it fails.

``world()`` is the job's COMM_WORLD, or None for a plain single process, which
then never imports (and so never initializes) MPI. ``abort_on_error()`` makes an
uncaught exception on any rank, in any thread, print which rank failed and
abort the whole job, instead of leaving the other ranks waiting forever in
their next collective call.
"""
import os
import sys
import threading
import traceback

from ..errors import FirecaffeError

# Set for each process by MPI launchers: MPICH's Hydra, Intel MPI and srun --mpi=pmi2 (PMI_*),
# Open MPI's mpirun (OMPI_*), srun --mpi=pmix and other PMIx launchers (PMIX_RANK, no size).
_LAUNCHER_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")
_LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")


def _launched_size():
    """The process count a launcher announced (1 if it did not say), None when no launcher started us."""
    if not any(name in os.environ for name in _LAUNCHER_RANK_VARIABLES):
        return None
    for name in _LAUNCHER_SIZE_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


def world():
    """``MPI.COMM_WORLD``, or None outside an MPI launch (or without mpi4py in a 1-process launch)."""
    size = _launched_size()
    if size is None:
        return None
    joined = _leave_if_mpi_init_hangs(size)
    try:
        from mpi4py import MPI
    except ImportError:
        if size > 1:
            raise FirecaffeError(
                f"started as one of {size} MPI processes, but mpi4py is not installed, so the "
                "processes cannot talk to each other: pip install 'firecaffe[mpich]'") from None
        return None
    finally:
        joined.set()
    return MPI.COMM_WORLD


def _leave_if_mpi_init_hangs(size):
    """MPICH's MPI_Init waits forever for a rank that ended before it joined (an error in its
    start-up, a Ctrl-C inside Python's own start-up). No Python code runs during MPI_Init (it holds
    the interpreter), so a real-time alarm with its default action ends this rank after
    FIRECAFFE_MPI_INIT_TIMEOUT seconds (default 300; 0: wait forever); the launcher then ends the
    job, naming signal 14 (SIGALRM). The returned event cancels the alarm."""
    import signal

    class Joined:
        def set(self):
            if armed:
                signal.setitimer(signal.ITIMER_REAL, *earlier)     # (0, 0) unless someone else had one
                signal.signal(signal.SIGALRM, previous)

    from ..core.options import environment
    try:
        timeout = environment().mpi_init_timeout
    except FirecaffeError:
        timeout = 300.0             # not a number: the default (no message can be shown before MPI_Init)
    armed = (size > 1 and timeout > 0 and "mpi4py.MPI" not in sys.modules      # MPI_Init comes now
             and threading.current_thread() is threading.main_thread())
    if armed:
        previous = signal.signal(signal.SIGALRM, signal.SIG_DFL)
        earlier = signal.setitimer(signal.ITIMER_REAL, timeout)
    return Joined()


def wait_until_read(fd, timeout=2.0):
    """Wait (at most ``timeout`` s) until whoever reads the pipe behind ``fd`` has taken all of it.

    Under mpiexec a rank's stderr is a pipe to the launcher's proxy; an abort
    right after the write can take the job down before the proxy has read the
    message, and the one line that says what failed is lost. Not a pipe (a
    file, a terminal): nothing to wait for.
    """
    import array
    import fcntl
    import stat
    import termios
    import time
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return
        unread, deadline = array.array("i", [0]), time.monotonic() + timeout
        while time.monotonic() < deadline:
            fcntl.ioctl(fd, termios.FIONREAD, unread)
            if unread[0] == 0:
                return
            time.sleep(0.005)
    except (OSError, ValueError):
        return


def say_and_abort(comm, text, code):
    """Write ``text`` to stderr in one write, let the launcher read it, then abort the job with ``code``.

    Never returns: MPICH's MPI_Abort can return when another thread of this rank
    is inside a blocking call (--bucket-mb), so the process exits after it.
    """
    from . import held_output
    held_output.release()                           # what was held since a stop signal comes first
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os.write(2, text.encode(errors="replace"))      # one write: nothing interleaved, nothing half-said
    wait_until_read(2)
    try:
        comm.Abort(code)
    finally:
        os._exit(code)


def rank_prefix():
    """``"rank R of P: "`` for messages from a multi-rank job, ``""`` otherwise."""
    comm = world()
    if comm is None or comm.Get_size() == 1:
        return ""
    return f"rank {comm.Get_rank()} of {comm.Get_size()}: "


class FailureContext:
    """What else is known when this rank fails: callables that each return ``"; ..."`` (or "").

    ``abort_on_error`` appends their text to a failing rank's message; the stall watchdog adds the
    peers that no longer answer over the network, so that an MPI error raised by a lost link names
    the node behind it as a stall would.
    """

    def __init__(self):
        self._describers = []

    def add(self, describe):
        self._describers.append(describe)

    def text(self):
        text = ""
        for describe in self._describers:
            try:
                text += describe()
            except Exception:       # noqa: BLE001 - a failing diagnosis must not hide the failure
                pass
        return text


def abort_on_error(context=None):
    """Make an uncaught exception on this rank end the whole job with a message naming the rank;
    returns the FailureContext (``context``, or a new one) whose text ends that message.

    The message is ``firecaffe: rank R of P failed: <message>`` on stderr; a
    FirecaffeError prints only its message, any other exception its traceback
    first. With more than one rank the job is then aborted (MPI_Abort), which
    takes every rank down within seconds rather than letting them hang.
    """
    def report_and_abort(exc_type, exc, tb):
        comm = world()
        text = "" if issubclass(exc_type, FirecaffeError) else "".join(
            traceback.format_exception(exc_type, exc, tb))
        where = "" if comm is None else f"rank {comm.Get_rank()} of {comm.Get_size()} "
        message = str(exc) if issubclass(exc_type, FirecaffeError) else f"{exc_type.__name__}: {exc}"
        text += f"firecaffe: {where}failed: {message}{context.text()}\n"
        if comm is not None and comm.Get_size() > 1:
            say_and_abort(comm, text, 1)
        sys.stderr.flush()
        os.write(2, text.encode(errors="replace"))

    def report_thread(args):
        if args.exc_type is not SystemExit:
            report_and_abort(args.exc_type, args.exc_value, args.exc_traceback)

    context = FailureContext() if context is None else context
    sys.excepthook = report_and_abort
    threading.excepthook = report_thread
    return context
