"""Set-up shared by every test folder.

firecaffe's sources are byte-compiled once, before any test starts a process. Where
PYTHONDONTWRITEBYTECODE is set (it is on this project's machines) and firecaffe is installed
editable, no process writes the .pyc files, so every rank of every mpiexec job compiled all of
firecaffe again: about 0.26 s of CPU per process, which made a 128-rank run on 2 cores 66 s
instead of 52 (docs/launch.md, "Start-up at many ranks").
"""
import compileall
import pathlib

import firecaffe


def pytest_sessionstart(session):
    # quiet=2: an install the tests cannot write to (a system-wide one) is left as it is, silently;
    # a source that does not compile shows itself where a test imports it
    compileall.compile_dir(pathlib.Path(firecaffe.__file__).parent, quiet=2)
