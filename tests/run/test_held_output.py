"""Output held after a stop signal comes out in order at the end; a dead reader is no error."""
import io
import logging
import os
import sys

from firecaffe.core.log import LOGGER
from firecaffe.run import held_output


def test_held_lines_come_out_in_order_at_release(monkeypatch):
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    handler = logging.StreamHandler(err)
    monkeypatch.setattr(LOGGER, "handlers", [handler])     # only ours (earlier tests leave theirs)
    monkeypatch.setattr(LOGGER, "propagate", False)
    try:
        held_output.hold()
        print("one")
        LOGGER.warning("two")
        print("three", file=sys.stderr)
        assert out.getvalue() == err.getvalue() == ""
        held_output.release()
    finally:
        held_output.release()
    assert sys.stdout is out and sys.stderr is err and handler.stream is err
    assert out.getvalue() == "one\n" and err.getvalue() == "two\nthree\n"


def test_release_into_a_pipe_nobody_reads_is_quiet(monkeypatch):
    read_end, write_end = os.pipe()
    os.close(read_end)
    dead = os.fdopen(write_end, "w")
    monkeypatch.setattr(sys, "stdout", dead)
    held_output.hold()
    print("nobody reads this")
    held_output.release()                       # EPIPE (SIGPIPE is ignored in Python): no exception
    print("nor this", flush=True)               # the descriptor now leads to /dev/null
    assert os.readlink(f"/proc/self/fd/{write_end}") == os.devnull
    dead.close()
