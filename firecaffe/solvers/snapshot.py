"""Solver snapshots in Caffe's two formats, written atomically.

BINARYPROTO: PREFIX_iter_N.caffemodel + PREFIX_iter_N.solverstate (SolverState).
HDF5:        PREFIX_iter_N.caffemodel.h5 + PREFIX_iter_N.solverstate.h5
             (datasets iter, learned_net, current_step, history/<i>).
History blobs are stored one per learnable parameter, in Caffe's order (every
parameter's first history set, then the second set for AdaDelta and Adam).
Beyond Caffe, the state also records where each data layer is reading and the
random generator's state, so a resumed run continues exactly where it stopped.
"""
import json
import os

import numpy as np

from ..core import backend
from ..core.atomic import atomic_path, write_bytes
from ..errors import FirecaffeError
from ..core.log import LOGGER
from ..proto import caffe_pb2, io


def _prefix(solver):
    p = solver.param
    if p.snapshot_prefix:
        return p.snapshot_prefix
    return os.path.splitext(solver.path)[0] if solver.path else "firecaffe"


def _hdf5(solver):
    return solver.param.snapshot_format == caffe_pb2.SolverParameter.HDF5


def _extra_state(solver):
    nets = [solver.net] + list(solver.test_nets)
    return json.dumps({
        "iter": solver.iter,
        "data": [[layer.get_state() if hasattr(layer, "get_state") else None for layer in net.layers]
                 for net in nets],
        "rng": backend.rng().bit_generator.state,
        "losses": list(solver.losses),
    })


def _per_param_history(solver):
    net = solver.net
    for flat in solver.rule.state():
        flat = backend.to_host(flat)
        for blob, offset in zip(net.learnable_params, net.param_offsets):
            yield flat[offset:offset + blob.count].reshape(blob.shape)


def save(solver):
    prefix = f"{_prefix(solver)}_iter_{solver.iter}"
    weights = prefix + (".caffemodel.h5" if _hdf5(solver) else ".caffemodel")
    state = prefix + (".solverstate.h5" if _hdf5(solver) else ".solverstate")
    kind = "HDF5" if _hdf5(solver) else "binary proto"
    LOGGER.info(f"Snapshotting to {kind} file {weights}")
    solver.net.save(weights)
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
                f["firecaffe_state"] = _extra_state(solver)
    else:
        msg = caffe_pb2.SolverState(iter=solver.iter, learned_net=weights, current_step=current_step)
        for h in history:
            msg.history.add().CopyFrom(io.array_to_blob(h))
        if "firecaffe_state" in caffe_pb2.SolverState.DESCRIPTOR.fields_by_name:
            msg.firecaffe_state = _extra_state(solver)
        write_bytes(state, msg.SerializeToString())
    return state


def _current_step(solver):
    values = list(solver.param.stepvalue)
    return sum(1 for v in values if solver.iter >= v)


def restore(solver, path):
    """Load a .solverstate (or .solverstate.h5) and the weights it names."""
    if not os.path.exists(path):
        raise FirecaffeError(f"snapshot {path}: no such file")
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
    if extra:
        _load_extra_state(solver, json.loads(extra))
    LOGGER.info(f"Restored solver state from {path} at iteration {iteration}")


def _read_binary_state(path):
    with open(path, "rb") as f:
        data = f.read()
    msg = caffe_pb2.SolverState()
    msg.ParseFromString(data)
    if not msg.HasField("iter"):
        raise FirecaffeError(f"snapshot {path}: holds no iteration; not a solver state")
    extra = getattr(msg, "firecaffe_state", "")
    return msg.iter, msg.learned_net, [io.blob_to_array(b, np.float64) for b in msg.history], extra


def _read_hdf5_state(path):
    import h5py
    with h5py.File(path, "r") as f:
        if "iter" not in f:
            raise FirecaffeError(f"snapshot {path}: holds no 'iter' dataset; not a solver state")
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


def latest(prefix):
    """The newest complete snapshot state for ``prefix`` (its weights exist too), or None."""
    folder = os.path.dirname(prefix) or "."
    base = os.path.basename(prefix) + "_iter_"
    best = None
    if not os.path.isdir(folder):
        return None
    for name in os.listdir(folder):
        if not name.startswith(base):
            continue
        rest = name[len(base):]
        for suffix, weights in ((".solverstate", ".caffemodel"), (".solverstate.h5", ".caffemodel.h5")):
            number = rest[:-len(suffix)] if rest.endswith(suffix) else None
            if number and number.isdigit() and os.path.exists(
                    os.path.join(folder, base + number + weights)):
                if best is None or int(number) > best[0]:
                    best = (int(number), os.path.join(folder, name))
    return best[1] if best else None
