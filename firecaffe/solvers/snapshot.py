"""Solver snapshots in Caffe's two formats, written atomically.

BINARYPROTO: PREFIX_iter_N.caffemodel + PREFIX_iter_N.solverstate (SolverState).
HDF5:        PREFIX_iter_N.caffemodel.h5 + PREFIX_iter_N.solverstate.h5
             (datasets iter, learned_net, current_step, history/<i>).
History blobs are stored one per learnable parameter, in Caffe's order (every
parameter's first history set, then the second set for AdaDelta and Adam).
Beyond Caffe, the state also records where each data layer is reading and the
random generator's state, so a resumed run continues exactly where it stopped,
and, with ``--compress int8`` or ``powersgd``, every worker's error-feedback residual
and PowerSGD's Q (in the same JSON, base64 float32: Caffe reads the file as before).
Each file gets a SHA-256 beside it (PATH.sha256, core/integrity.py), checked when
it is loaded; latest() passes over snapshots that fail it, saying why.
"""
import base64
import json
import os
import shutil

import numpy as np

from ..core import backend, integrity
from ..core.atomic import atomic_path, write_bytes
from ..errors import FirecaffeError
from ..core.log import LOGGER
from ..proto import caffe_pb2, io


def prefix_of(solver):
    """The snapshot prefix: snapshot_prefix, else the solver file's name without .prototxt."""
    p = solver.param
    if p.snapshot_prefix:
        return p.snapshot_prefix
    return os.path.splitext(solver.path)[0] if solver.path else "firecaffe"


def _hdf5(solver):
    return solver.param.snapshot_format == caffe_pb2.SolverParameter.HDF5


def _extra_state(solver, codec_state=None):
    nets = [solver.net] + list(solver.test_nets)
    record = {
        "iter": solver.iter,
        "data": [[layer.get_state() if hasattr(layer, "get_state") else None for layer in net.layers]
                 for net in nets],
        "rng": backend.rng().bit_generator.state,
        "losses": list(solver.losses),
        "global_batch": solver.plan.global_batch,
        "workers": solver.workers,
    }
    if codec_state:
        record["compress"] = {"codec": codec_state["codec"], "workers": [
            {name: base64.b64encode(np.ascontiguousarray(array, np.float32).tobytes()).decode("ascii")
             for name, array in state.items()} for state in codec_state["workers"]]}
    return json.dumps(record)


def _codec_state(record):
    """The ``compress`` record of the JSON state with its arrays decoded (None if there is none)."""
    if not record:
        return None
    return {"codec": record["codec"], "workers": [
        {name: np.frombuffer(base64.b64decode(text), np.float32).copy() for name, text in state.items()}
        for state in record["workers"]]}


def _per_param_history(solver):
    net = solver.net
    for flat in solver.rule.state():
        flat = backend.to_host(flat)
        for blob, offset in zip(net.learnable_params, net.param_offsets):
            yield flat[offset:offset + blob.count].reshape(blob.shape)


def save(solver, codec_state=None):
    """Write the snapshot of this iteration; keep only the newest ``--snapshot-keep`` N (0: all).
    ``codec_state``: every worker's compression state (``DataParallel.gather_codec_state``), or None.

    A write that fails (disk full, I/O error) leaves no half snapshot and the
    previous ones intact, and raises one FirecaffeError naming the file and the free space.
    """
    prefix = f"{prefix_of(solver)}_iter_{solver.iter}"
    weights = prefix + (".caffemodel.h5" if _hdf5(solver) else ".caffemodel")
    state = prefix + (".solverstate.h5" if _hdf5(solver) else ".solverstate")
    solver.hooks.fire("snapshot", solver.iter, state)     # the rank's last-words watcher is told
    writing = [weights]
    try:
        _write(solver, weights, state, writing, codec_state)
    except OSError as exc:
        if os.path.exists(weights) and not os.path.exists(state):
            for path in (weights, integrity.sidecar(weights)):     # weights without a state: no snapshot
                if os.path.exists(path):
                    os.unlink(path)
        # h5py's errors carry errno and a multi-line dump of HDF5's own message as strerror
        reason = os.strerror(exc.errno) if exc.errno else str(exc).splitlines()[0]
        raise FirecaffeError(f"snapshot {writing[0]}: cannot write ({reason}); "
                             f"{_free_text(os.path.dirname(state) or '.')}; the previous snapshots "
                             "are intact") from None
    keep = solver.options.snapshot_keep
    if keep:
        prune(prefix_of(solver), keep)
    return state


def _write(solver, weights, state, writing, codec_state=None):
    """Write both files and their checksums; ``writing[0]`` names the file being written."""
    kind = "HDF5" if _hdf5(solver) else "binary proto"
    LOGGER.info(f"Snapshotting to {kind} file {weights}")
    solver.net.save(weights)
    writing[0] = integrity.sidecar(weights)
    integrity.write(weights)
    writing[0] = state
    LOGGER.info(f"Snapshotting solver state to {kind} file {state}")
    history = list(_per_param_history(solver))
    current_step = _current_step(solver)
    if _hdf5(solver):
        import h5py
        with atomic_path(state) as tmp:
            with h5py.File(tmp, "w") as f:
                f["iter"] = solver.iter
                f["learned_net"] = weights
                f["current_step"] = current_step
                group = f.create_group("history")
                for i, h in enumerate(history):
                    group.create_dataset(str(i), data=h)
                f["firecaffe_state"] = _extra_state(solver, codec_state)
    else:
        msg = caffe_pb2.SolverState(iter=solver.iter, learned_net=weights, current_step=current_step)
        for h in history:
            msg.history.add().CopyFrom(io.array_to_blob(h))
        if "firecaffe_state" in caffe_pb2.SolverState.DESCRIPTOR.fields_by_name:
            msg.firecaffe_state = _extra_state(solver, codec_state)
        write_bytes(state, msg.SerializeToString())
    writing[0] = integrity.sidecar(state)
    integrity.write(state)


def _free_text(folder):
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:.1f} MiB free in {folder}"
    except OSError:
        return f"free space in {folder} unknown"


def snapshot_bytes(solver):
    """About how many bytes one snapshot takes (weights, solver history, protobuf overhead)."""
    arena = solver.net.param_arena
    values = arena.size * (1 + len(solver.rule.state()))
    return int(values * arena.dtype.itemsize * 1.05) + 256 * 1024


def check_writable(solver):
    """Before the first iteration: the snapshot folder exists or can be made, and has room for one."""
    prefix = prefix_of(solver)
    folder = os.path.dirname(os.path.abspath(prefix))
    probe = folder
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise FirecaffeError(f"snapshot prefix {prefix}: {probe} is a file, not a folder; "
                             "choose another --snapshot-prefix")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise FirecaffeError(f"snapshot prefix {prefix}: cannot make the folder {folder} ({exc.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise FirecaffeError(f"snapshot prefix {prefix}: the folder {folder} is not writable")
    need = snapshot_bytes(solver)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < need:
        raise FirecaffeError(f"snapshot prefix {prefix}: one snapshot needs about {need / 2**20:.1f} MiB, "
                             f"{_free_text(folder)}")


def prune(prefix, keep):
    """Delete all but the newest ``keep`` complete snapshots of ``prefix`` (weights and state)."""
    for iteration, state, weights in all_snapshots(prefix)[:-keep]:
        for path in (state, weights, integrity.sidecar(state), integrity.sidecar(weights)):
            try:
                os.unlink(path)
            except OSError:
                pass
        LOGGER.info(f"Removed snapshot {state} (--snapshot-keep {keep})")


def _current_step(solver):
    values = list(solver.param.stepvalue)
    return sum(1 for v in values if solver.iter >= v)


def restore(solver, path):
    """Load a .solverstate (or .solverstate.h5) and the weights it names; return the ``(global batch,
    workers)`` it recorded (None for what it did not)."""
    if not os.path.exists(path):
        raise FirecaffeError(f"snapshot {path}: no such file")
    integrity.verify(path, "snapshot ")
    try:
        if path.endswith(".h5"):
            iteration, learned_net, history, extra = _read_hdf5_state(path)
        else:
            iteration, learned_net, history, extra = _read_binary_state(path)
    except FirecaffeError as exc:
        raise FirecaffeError(f"snapshot {path}: {exc}") from None
    except Exception as exc:
        raise FirecaffeError(f"snapshot {path}: not a readable solver state ({type(exc).__name__}: {exc}); "
                             "is the file truncated, or from another program?") from None
    if learned_net:
        # the weights beside the state file first (snapshot folders get moved), then the recorded path
        beside = os.path.join(os.path.dirname(path), os.path.basename(learned_net))
        weights = beside if os.path.exists(beside) else learned_net
        if not os.path.exists(weights):
            raise FirecaffeError(f"snapshot {path}: the weights file it names, {learned_net}, is missing")
        solver.net.copy_from(weights, require_all=True)
    _load_history(solver, path, history)
    solver.iter = iteration
    recorded = _load_extra_state(solver, json.loads(extra)) if extra else (None, None)
    LOGGER.info(f"Restored solver state from {path} at iteration {iteration}")
    return recorded


def _read_binary_state(path):
    with open(path, "rb") as f:
        data = f.read()
    msg = caffe_pb2.SolverState()
    msg.ParseFromString(data)
    if not msg.HasField("iter"):
        raise FirecaffeError("holds no iteration; not a solver state")
    extra = getattr(msg, "firecaffe_state", "")
    return msg.iter, msg.learned_net, [io.blob_to_array(b, np.float64) for b in msg.history], extra


def _read_hdf5_state(path):
    import h5py
    with h5py.File(path, "r") as f:
        if "iter" not in f:
            raise FirecaffeError("holds no 'iter' dataset; not a solver state")
        learned = f["learned_net"][()] if "learned_net" in f else b""
        learned = learned.decode() if isinstance(learned, bytes) else str(learned)
        history = [np.asarray(f["history"][str(i)]) for i in range(len(f.get("history", {})))]
        extra = f["firecaffe_state"][()] if "firecaffe_state" in f else b""
        extra = extra.decode() if isinstance(extra, bytes) else str(extra)
        return int(f["iter"][()]), learned, history, extra


def _load_history(solver, path, history):
    net = solver.net
    n = len(net.learnable_params)
    sets = solver.rule.state()
    if len(history) != n * len(sets):
        raise FirecaffeError(f"snapshot {path}: has {len(history)} history blobs, but this net and solver "
                             f"type need {n * len(sets)}; is it from another net or solver type?")
    flats = []
    for s, _ in enumerate(sets):
        flat = np.empty(net.param_arena.size, dtype=net.dtype)
        for i, (blob, offset) in enumerate(zip(net.learnable_params, net.param_offsets)):
            h = history[s * n + i]
            if h.size != blob.count:
                raise FirecaffeError(f"snapshot {path}: history blob {s * n + i} has {h.size} values, "
                                     f"the net's parameter {blob.name} has {blob.count}; another net?")
            flat[offset:offset + blob.count] = h.reshape(-1)
        flats.append(backend.xp_of(net.param_arena).asarray(flat))
    solver.rule.load_state(flats)


def _load_extra_state(solver, extra):
    nets = [solver.net] + list(solver.test_nets)
    for net, states in zip(nets, extra.get("data", [])):
        for layer, state in zip(net.layers, states):
            if state is not None and hasattr(layer, "set_state"):
                layer.set_state(state)
    if "rng" in extra:
        backend.rng().bit_generator.state = extra["rng"]
    solver.losses.clear()
    solver.losses.extend(extra.get("losses", []))
    if solver.losses:
        solver.smoothed_loss = sum(solver.losses) / len(solver.losses)
    if solver.parallel is not None:
        solver.parallel.load_codec_state(_codec_state(extra.get("compress")))
    return extra.get("global_batch"), extra.get("workers")


def all_snapshots(prefix):
    """Complete snapshots of ``prefix`` (state and weights both present), oldest first:
    a list of (iteration, state path, weights path)."""
    folder = os.path.dirname(prefix) or "."
    base = os.path.basename(prefix) + "_iter_"
    found = []
    if not os.path.isdir(folder):
        return found
    for name in os.listdir(folder):
        if not name.startswith(base):
            continue
        rest = name[len(base):]
        for suffix, weights in ((".solverstate", ".caffemodel"), (".solverstate.h5", ".caffemodel.h5")):
            number = rest[:-len(suffix)] if rest.endswith(suffix) else None
            weights_path = os.path.join(folder, base + (number or "") + weights)
            if number and number.isdigit() and os.path.exists(weights_path):
                found.append((int(number), os.path.join(folder, name), weights_path))
    return sorted(found)


def latest(prefix):
    """The newest complete, intact snapshot state for ``prefix`` (its weights exist too, and
    both match their checksums), or None; each newer one passed over is logged with the reason."""
    for iteration, state, weights in reversed(all_snapshots(prefix)):
        why = next(((path, reason) for path in (state, weights)
                    for reason in [integrity.problem(path)] if reason), None)
        if why is None:
            return state
        LOGGER.warning(f"--resume-latest: skipping the snapshot of iteration {iteration}: {why[0]}: {why[1]}")
    return None
