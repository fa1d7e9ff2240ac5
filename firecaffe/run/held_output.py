"""After a stop signal, hold this process's output until it ends.

``mpirun ... 2>&1 | tee log`` and Ctrl-C: the terminal sends SIGINT to tee as
well, tee dies, and the next byte the launcher forwards from any rank kills
the launcher with SIGPIPE, whose proxies then SIGKILL every rank before the
snapshot is written. So once a rank has a stop signal, what it prints (the log
lines of the last iteration, the snapshot's, the ``stopped by`` line) is kept
in memory and written when the process ends, after the snapshot. Where nothing
reads any more, the write fails (EPIPE, or the launcher dies then) and is
dropped: the work is already saved. A terminal or a file shows the same lines,
a moment later. Writes made with ``os.write`` (the last-resort messages before
an abort or a second Ctrl-C) are not held; ``release()`` runs first there.
"""
import atexit
import os
import sys
import threading

LIMIT = 1 << 20                  # characters kept; beyond that, only a count of what was dropped


class _Held:
    def __init__(self, real_out, real_err):
        self.real = {"out": real_out, "err": real_err}
        self.chunks = []         # (which, text) in the order written
        self.size = self.dropped = 0
        self.lock = threading.Lock()
        self.out, self.err = _Stream(self, "out"), _Stream(self, "err")

    def add(self, which, text):
        with self.lock:
            if self.size + len(text) > LIMIT:
                self.dropped += len(text)
                return
            self.chunks.append((which, text))
            self.size += len(text)


class _Stream:
    """A text stream that keeps what is written to it (flush and isatty as the real one's)."""

    def __init__(self, held, which):
        self._held, self._which = held, which

    def write(self, text):
        self._held.add(self._which, text)
        return len(text)

    def flush(self):
        pass

    def __getattr__(self, name):            # encoding, isatty, fileno, ... of the real stream
        return getattr(self._held.real[self._which], name)


_held = None
_lock = threading.Lock()


def hold():
    """From now on keep what this process prints through sys.stdout, sys.stderr and the log."""
    global _held
    with _lock:
        if _held is not None:
            return
        _held = _Held(sys.stdout, sys.stderr)
        _swap({_held.real["out"]: _held.out, _held.real["err"]: _held.err})
    atexit.register(release)


def release():
    """Write what was held (in order) and give the real streams back; a dead reader is ignored."""
    global _held
    with _lock:
        held, _held = _held, None
        if held is None:
            return
        _swap({held.out: held.real["out"], held.err: held.real["err"]})
    with held.lock:
        chunks, dropped = held.chunks, held.dropped
    if dropped:
        chunks.append(("err", f"firecaffe: {dropped} characters of output after the signal were not kept\n"))
    dead = set()
    for which, text in chunks + [("out", ""), ("err", "")]:
        if which in dead:
            continue
        stream = held.real[which]
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):
            dead.add(which)
            _silence(stream)


def _silence(stream):
    """Nothing reads ``stream`` any more (its pipe's reader is gone): point its file descriptor at
    /dev/null, so that what it still holds, and all later output, goes nowhere without an error."""
    try:
        fd = stream.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)
        stream.flush()
    except (OSError, ValueError, AttributeError):
        pass


def _swap(replace):
    """Point sys.stdout/sys.stderr and the log handlers that write to them at their replacements."""
    import logging
    for name in ("stdout", "stderr"):
        current = getattr(sys, name)
        if current in replace:
            setattr(sys, name, replace[current])
    for handler in logging.getLogger("firecaffe").handlers:
        stream = getattr(handler, "stream", None)
        if stream in replace:
            handler.stream = replace[stream]     # not setStream: that flushes the old stream
