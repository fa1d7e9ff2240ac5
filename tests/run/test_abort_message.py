"""The abort waits until the launcher has read the failing rank's message (run/mpi_util.py)."""
import os
import threading
import time

from firecaffe.run.mpi_util import wait_until_read


def test_it_returns_once_the_reader_has_taken_the_message():
    read_end, write_end = os.pipe()
    os.write(write_end, b"firecaffe: rank 2 of 3 failed: boom\n")
    got = []
    reader = threading.Timer(0.3, lambda: got.append(os.read(read_end, 1000)))
    start = time.monotonic()
    reader.start()
    wait_until_read(write_end, timeout=120)
    waited = time.monotonic() - start
    reader.join()
    # it waited for the reader (0.3 s), and not for the timeout (the bound holds on a loaded machine)
    assert got == [b"firecaffe: rank 2 of 3 failed: boom\n"] and 0.25 < waited < 60
    os.close(read_end), os.close(write_end)


def test_a_reader_that_never_reads_costs_the_timeout_and_a_file_nothing(tmp_path, monkeypatch):
    read_end, write_end = os.pipe()
    os.write(write_end, b"x")
    start = time.monotonic()
    wait_until_read(write_end, timeout=0.2)
    assert 0.15 < time.monotonic() - start < 60          # gave up at the timeout: it ends
    os.close(read_end), os.close(write_end)

    def no_waiting(seconds):
        raise AssertionError(f"waited {seconds} s for a reader behind a regular file")
    monkeypatch.setattr(time, "sleep", no_waiting)      # a file has no reader: nothing to wait for
    with open(tmp_path / "log", "w+") as log:
        log.write("firecaffe: rank 2 of 3 failed: boom\n")
        log.flush()
        log.seek(0)                                     # bytes "unread" behind the offset, never to be read
        wait_until_read(log.fileno(), timeout=120)


def test_what_the_watchdog_knows_about_the_network_joins_a_failing_ranks_message():
    import subprocess
    import sys
    script = (
        "from firecaffe.run import mpi_util\n"
        "context = mpi_util.abort_on_error()\n"
        "context.add(lambda: 1 / 0)\n"
        "context.add(lambda: '; unreachable over the network: rank 2 (on n2)')\n"
        "raise RuntimeError('Other MPI error, error stack: connection timed out')\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.rstrip().endswith(
        "firecaffe: failed: RuntimeError: Other MPI error, error stack: connection timed out; "
        "unreachable over the network: rank 2 (on n2)"), run.stderr
