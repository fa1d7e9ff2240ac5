"""Signals that arrive while the `firecaffe` command is still starting up.

Importing NumPy, the layers and MPI takes about a second; a Ctrl-C (or a SLURM
warning, or mpiexec forwarding a signal) in that time used to raise
KeyboardInterrupt inside some import: two tracebacks, and under MPI one rank
gone before MPI_Init while the others waited for it forever. ``defer()`` runs
first thing when the package is imported *as the command* (not when a program
imports firecaffe) and only records such signals; ``take()`` hands them to
run/signals.py once `train` has installed its handlers (they then act at the
first iteration boundary, as any signal does), and ``resume()`` gives them back
to the default behaviour for the other commands.
"""
import os
import signal

DEFERRED = ("SIGINT", "SIGTERM", "SIGUSR1", "SIGHUP")
_pending = []
_previous = {}


def started_as_command(orig_argv):
    """Whether this interpreter runs ``firecaffe ...`` or ``python -m firecaffe ...``."""
    args = list(orig_argv)
    if "-m" in args[:-1]:
        return args[args.index("-m") + 1] == "firecaffe"
    return len(args) > 1 and os.path.basename(args[1]) == "firecaffe"


def defer():
    for name in DEFERRED:
        number = getattr(signal, name)
        try:
            _previous[number] = signal.signal(number, _record)
        except (ValueError, OSError):      # not the main thread, or not settable
            pass


def _record(number, frame):
    _pending.append(number)


def take():
    """The signals recorded so far (once); the deferral ends (the caller has installed its own)."""
    _previous.clear()
    taken, _pending[:] = list(_pending), []
    return taken


def resume():
    """Give the signals their previous handlers, and deliver the ones that came meanwhile."""
    if not _previous:
        return
    for number, handler in _previous.items():
        signal.signal(number, handler)
    _previous.clear()
    taken, _pending[:] = list(_pending), []
    for number in taken:
        os.kill(os.getpid(), number)
