"""The last-words watcher of one rank (started by run/watchdog.py): ``last_words.py FD WHO CLAIM``.

It reads the rank's pipe (FD) until EOF, keeps the last line, and speaks unless
the last line was ``bye``. It runs in a process group of its own, so the
launcher's clean-up (which kills each rank's group) cannot silence it. When one
rank dies the launcher kills the others, so every watcher on the node sees its
rank end: each notes the moment it did (before any other work) in a file
CLAIM.<pid>, waits a little, and only the watcher whose rank ended first
speaks; a few seconds later each removes its claim. That moment is when the watcher got a core after its rank's end: on a
machine whose cores the ranks keep busy a watcher woken later could run first
and claim the first end, so the watchers ask for a higher priority (allowed to
root; they sleep in read until the end). It is run by its path with ``-I -S``
and imports only the standard library: one per rank, it must cost nothing.
"""
import glob
import os
import sys
import time

CLAIM_KEPT_S = 5.0         # how long a claim stays for the slower watchers of the same end


def read_until_closed(fd):
    """(the last lines written to ``fd``, the last ``signal ...`` note) once the writer has closed it."""
    data, signalled = b"", []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            break
        data = data + chunk
        if b"signal " in data:          # a signal's note is kept however much follows it
            signalled = [line for line in data.decode("utf-8", "replace").split("\n")[:-1]
                         if line.startswith("signal ")][-1:] or signalled
        data = data[-4096:]
    return [line for line in data.decode("utf-8", "replace").split("\n") if line], signalled


def ended_first(claim, ended):
    """Record when this watcher's rank ended; True if no other watcher of the job saw an earlier end."""
    mine = f"{claim}.{os.getpid()}"
    with open(mine, "w") as f:
        f.write(repr(ended))
    time.sleep(0.5)
    times = []
    for path in glob.glob(claim + ".*"):
        try:
            with open(path) as f:
                times.append((float(f.read()), path))
        except (OSError, ValueError):
            pass
    return not times or min(times)[1] == mine


def message(who, lines, signalled):
    if signalled:
        # the launcher (Ctrl-C, scancel, a time limit) asked first and killed before the rank finished
        return (f"firecaffe: {who} was killed before it could stop cleanly, after a {signalled[-1]} "
                "(not a crash: the job was being ended); the job is ended\n")
    last = f"; its last sign of life: {lines[-1]}" if lines else ""
    return (f"firecaffe: {who} died without a message (killed by a signal: SIGKILL, the out-of-memory "
            f"killer, or a crash){last}; the job is ended\n")


def main(argv):
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    except (AttributeError, OSError):
        pass
    fd, who, claim = int(argv[0]), argv[1], argv[2]
    lines, signalled = read_until_closed(fd)
    ended = time.monotonic()
    if lines and lines[-1] == "bye":
        return
    try:
        if ended_first(claim, ended):
            sys.stderr.write(message(who, lines, signalled))
            sys.stderr.flush()
    finally:
        forget(claim)


def forget(claim, kept_s=CLAIM_KEPT_S):
    """Remove this watcher's claim once the other watchers of the job have read it: they all woke
    within a second of each other when the launcher ended the job (no file is left in /tmp)."""
    time.sleep(kept_s)
    try:
        os.unlink(f"{claim}.{os.getpid()}")
    except OSError:
        pass


if __name__ == "__main__":
    main(sys.argv[1:])
