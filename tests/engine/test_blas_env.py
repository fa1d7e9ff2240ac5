"""firecaffe sets OpenBLAS's idle-thread timeout when it is imported before numpy."""
import os
import subprocess
import sys

CODE = "import firecaffe, os; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"


def _run(code, **env):
    full = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True,
                          text=True, check=True, timeout=120).stdout.strip()


def test_timeout_set_when_firecaffe_comes_first():
    assert _run(CODE) == "14"


def test_user_value_wins():
    assert _run(CODE, OPENBLAS_THREAD_TIMEOUT="20") == "20"


def test_not_set_after_numpy_loaded():
    # too late to take effect: leave the environment alone rather than pretend
    assert _run("import numpy; " + CODE) == "None"
