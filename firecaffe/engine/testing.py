"""Tools to test layers: build one from prototxt text and check its gradients
against central finite differences in float64; read what firecaffe logs."""
import logging
from contextlib import contextmanager

import numpy as np

from ..core.blob import Blob


@contextmanager
def logged(level=None):
    """The messages firecaffe's logger writes inside the block, as a list filled as they come.
    A handler of its own: the logger does not propagate once the CLI has set it up, so pytest's
    caplog may see nothing. ``level``: the logger's level meanwhile (e.g. INFO, for `firecaffe
    time`'s lines), restored after."""
    from ..core.log import LOGGER
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    LOGGER.addHandler(handler)
    saved = LOGGER.level
    if level is not None:
        LOGGER.setLevel(level)
    try:
        yield messages
    finally:
        LOGGER.removeHandler(handler)
        LOGGER.setLevel(saved)


def layer_param(text):
    """A LayerParameter from the text between ``layer { ... }``."""
    from google.protobuf import text_format
    from ..proto import caffe_pb2
    return text_format.Parse(text, caffe_pb2.LayerParameter())


def make_layer(text, bottoms, phase="TRAIN", dtype=np.float64, num_top=1):
    """Create and set up the layer described by ``text`` on arrays ``bottoms``.

    Returns ``(layer, bottom_blobs, top_blobs)``.
    """
    from ..ops import create_layer
    param = layer_param(text)
    if not param.name:
        param.name = "test"
    layer = create_layer(param, phase=phase, dtype=dtype)
    bottom = []
    for i, array in enumerate(bottoms):
        blob = Blob(np.shape(array), dtype, name=f"bottom{i}")
        blob.data[...] = array
        bottom.append(blob)
    top = [Blob((), dtype, name=f"top{i}") for i in range(num_top)]
    layer.setup(bottom, top)
    return layer, bottom, top


def check_gradient(layer, bottom, top, *, check_bottom=None, eps=1e-6, rtol=1e-5, atol=1e-7,
                   seed=0, top_weights=None):
    """Compare ``layer.backward`` with central differences of a random linear
    function of its tops: E = sum_i <top_i, R_i>.

    ``check_bottom`` lists the bottom indices to check (default: all);
    parameter gradients are always checked. Raises AssertionError naming the
    blob and the worst element on mismatch.
    """
    gen = np.random.default_rng(seed)
    check_bottom = range(len(bottom)) if check_bottom is None else check_bottom

    def objective():
        layer.reshape(bottom, top)
        layer.forward_and_loss(bottom, top)
        return sum(float(np.sum(t.data * w)) for t, w in zip(top, weights))

    layer.reshape(bottom, top)
    layer.forward_and_loss(bottom, top)
    weights = top_weights or [gen.standard_normal(t.shape) for t in top]
    for t, w in zip(top, weights):
        t.diff[...] = w
    for p in layer.blobs:
        p.diff[...] = 0
    propagate = [i in check_bottom for i in range(len(bottom))]
    layer.backward(top, propagate, bottom)
    analytic = [(f"bottom[{i}]", bottom[i], bottom[i].diff.copy()) for i in check_bottom]
    analytic += [(f"param[{j}]", p, p.diff.copy()) for j, p in enumerate(layer.blobs)]

    for label, blob, grad in analytic:
        flat = blob.data.reshape(-1)
        numeric = np.empty(flat.size)
        for k in range(flat.size):
            orig = flat[k]
            flat[k] = orig + eps
            plus = objective()
            flat[k] = orig - eps
            minus = objective()
            flat[k] = orig
            numeric[k] = (plus - minus) / (2 * eps)
        got = grad.reshape(-1)
        err = np.abs(got - numeric)
        bound = atol + rtol * np.maximum(np.abs(numeric), np.abs(got)) + 1e-6 * np.abs(numeric).max(initial=0)
        if np.any(err > bound):
            k = int(np.argmax(err - bound))
            raise AssertionError(
                f"{layer.type} '{layer.name}' {label} gradient mismatch at flat index {k}: "
                f"backward {got[k]:.8g}, finite difference {numeric[k]:.8g} "
                f"({int(np.sum(err > bound))} of {flat.size} elements off)")
    layer.reshape(bottom, top)
    layer.forward_and_loss(bottom, top)


class Finished:
    """What a finished command left: exit status, output, seconds."""

    def __init__(self, returncode, stdout, stderr, seconds):
        self.returncode, self.stdout, self.stderr, self.seconds = returncode, stdout, stderr, seconds

    def __str__(self):
        return (f"exit status {self.returncode} after {self.seconds:.1f} s\n--- stdout\n{self.stdout[-3000:]}"
                f"\n--- stderr\n{self.stderr[-5000:]}")


def run_job(args, ranks=None, timeout=60, cwd=None, env=None):
    """Run ``args`` (under ``mpiexec -n ranks`` when given) in a process session of
    its own, with ``cwd`` first on PYTHONPATH; on timeout kill the whole session and
    fail the test, so that no test can hang on a stuck MPI job."""
    import os
    import shutil
    import signal
    import subprocess
    import time

    import pytest
    args = [str(a) for a in args]
    if ranks is not None:
        mpiexec = shutil.which("mpiexec")
        if mpiexec is None:
            pytest.skip("mpiexec not found (pip install 'firecaffe[mpich]')")
        args = [mpiexec, "-n", str(ranks)] + args
    environment = dict(os.environ, FIRECAFFE_NO_PROGRESS="1")
    if cwd is not None:
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(cwd)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    environment.update(env or {})
    start = time.perf_counter()
    process = subprocess.Popen(args, cwd=cwd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"{' '.join(args)} still running after {timeout} s\n--- stdout\n{stdout[-3000:]}"
                    f"\n--- stderr\n{stderr[-5000:]}")
    return Finished(process.returncode, stdout, stderr, time.perf_counter() - start)
