"""Logging in Caffe's (glog's) line format, so tools that parse Caffe logs work:

    I1125 13:05:00.123456  4242 solver.py:120] Iteration 100 (52.3 iter/s, 1.91s/100 iters), loss = 0.12

Only rank 0 logs at INFO; other ranks log warnings and errors, prefixed with
their rank. On a terminal, a progress bar (tqdm) runs under the log lines.
"""
import logging
import os
import sys
import time

from .options import environment

LOGGER = logging.getLogger("firecaffe")


class GlogFormatter(logging.Formatter):
    def __init__(self, rank_prefix=""):
        super().__init__()
        self.rank_prefix = rank_prefix

    def format(self, record):
        t = time.localtime(record.created)
        micros = int((record.created % 1) * 1e6)
        stamp = time.strftime("%m%d %H:%M:%S", t)
        return (f"{record.levelname[0]}{stamp}.{micros:06d} {os.getpid():5d} "
                f"{os.path.basename(record.pathname)}:{record.lineno}] {self.rank_prefix}{record.getMessage()}")


class _TqdmAwareHandler(logging.StreamHandler):
    """Writes through tqdm when a progress bar is showing, so lines don't tear it."""

    def emit(self, record):
        try:
            from tqdm import tqdm
            if getattr(tqdm, "_instances", None):
                tqdm.write(self.format(record), file=self.stream)
                return
        except ImportError:
            pass
        super().emit(record)


def setup(rank=0, size=1, level=None, log_file=None):
    """Configure the firecaffe logger for this rank (idempotent).

    ``log_file``: also append this rank's lines to that file (train's ``--log``), written and flushed
    line by line by the process itself, so a log survives what kills a pipe (Ctrl-C on ``| tee``). The
    ranks of a job share the file: each line is one append, and the other ranks' lines carry their rank.
    """
    for old in LOGGER.handlers:
        if isinstance(old, logging.FileHandler):
            old.close()
    LOGGER.handlers.clear()
    formatter = GlogFormatter(f"[rank {rank}] " if size > 1 and rank != 0 else "")
    handler = _TqdmAwareHandler(sys.stderr)
    handler.setFormatter(formatter)
    LOGGER.addHandler(handler)
    if log_file:
        to_file = logging.FileHandler(log_file, mode="a", encoding="utf-8")
        to_file.setFormatter(formatter)
        LOGGER.addHandler(to_file)
    LOGGER.propagate = False
    env_level = environment().log_level
    if level is None:
        level = env_level or ("INFO" if rank == 0 else "WARNING")
    LOGGER.setLevel(level)
    return LOGGER


def progress(total, initial=0, enabled=True, force=False):
    """A tqdm bar (with ETA) on an interactive terminal, or None when output is piped (unless ``force``)."""
    if not enabled or (not force and (not sys.stderr.isatty() or environment().no_progress)):
        return None
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, unit="iter", leave=False, dynamic_ncols=True)
