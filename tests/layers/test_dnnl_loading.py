"""A libdnnl that cannot be loaded never breaks ``import firecaffe``: one warning
line says why, and the convolutions run their NumPy path."""
import os
import subprocess
import sys

import pytest

SCRIPT = """
import numpy as np
import firecaffe
from firecaffe.engine.testing import make_layer
from firecaffe.ops import dnnl
layer, bottom, top = make_layer('type: "Convolution" convolution_param { num_output: 2 kernel_size: 3 '
                                'weight_filler { type: "gaussian" } }', [np.ones((1, 2, 5, 5))], dtype=np.float32)
layer.forward(bottom, top)
print("available", dnnl.AVAILABLE, layer.engine_name, top[0].shape)
"""


def run_with_lib(value):
    env = dict(os.environ, FIRECAFFE_DNNL_LIB=value)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip(), [line for line in out.stderr.splitlines() if line.strip()]


def corrupt_library(tmp):
    path = tmp / "libdnnl.so.3"
    path.write_bytes(b"\x7fELF garbage" * 100)
    return str(path)


@pytest.mark.parametrize("make, words", [
    (lambda tmp: str(tmp / "missing" / "libdnnl.so.3"), "no such file"),
    (corrupt_library, "cannot load libdnnl"),
    (lambda tmp: "libm.so.6", "is not a usable oneDNN 3 library"),
])
def test_unloadable_library_warns_once_and_runs_numpy(tmp_path, make, words):
    stdout, stderr = run_with_lib(make(tmp_path))
    assert stdout == "available False NumPy (1, 2, 3, 3)"
    assert len(stderr) == 1 and "oneDNN is not used, layers run their NumPy path" in stderr[0], stderr
    assert words in stderr[0]


def test_turned_off_by_the_user_is_silent():
    stdout, stderr = run_with_lib("off")
    assert stdout == "available False NumPy (1, 2, 3, 3)" and stderr == []


def test_threadpoolctl_sees_onednns_openmp_so_ranks_share_the_cores():
    """firecaffe/run/parallel.py limits every thread pool threadpoolctl finds to the
    rank's share of the cores: oneDNN's libgomp is loaded at import, so it is one."""
    from firecaffe.ops import dnnl
    if not dnnl.AVAILABLE:
        pytest.skip(f"oneDNN not loaded: {dnnl.REASON}")
    from threadpoolctl import threadpool_info, threadpool_limits
    assert any(i["user_api"] == "openmp" and "libgomp" in i["filepath"] for i in threadpool_info())
    with threadpool_limits(1):
        assert all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "openmp")
