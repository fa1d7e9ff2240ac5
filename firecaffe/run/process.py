"""What one process of a job tells when it ends, made once by the command and handed down.

``last_words`` (watchdog.LastWords): the watcher process that speaks if this rank dies without a
message; ``failure_context`` (mpi_util.FailureContext): what is appended to a failing rank's
message; ``entry_point``: the command is the whole process (``firecaffe ...``), not run inside another
program, so it may leave process-wide state (a signal ignored) as it ends. `firecaffe train` hands both to the signal handling, the data-parallel job (its
watchdog) and the error hooks; the command's error path silences the watcher once it has spoken.
"""
from .mpi_util import FailureContext
from .watchdog import LastWords


class RankProcess:
    def __init__(self, entry_point=False):
        self.last_words = LastWords()
        self.failure_context = FailureContext()
        self.entry_point = entry_point       # made by the process's entry point (cli.main), not a host program
