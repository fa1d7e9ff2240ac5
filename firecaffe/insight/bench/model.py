"""Alpha-beta-gamma cost model of one gradient step, and its fit to measurements.

A message of m bytes costs ``alpha + m * beta`` on one link (latency plus
inverse bandwidth) and adding m bytes of float32 costs ``m * gamma``. Each
strategy declares its formula in its own file (firecaffe/comm/<name>.py,
``cost_coefficients``), linear in (alpha, beta, gamma), so the fit is a linear
least-squares problem; this module reads them from the registry. The tree's
formula is the pipelined tree that runs (512 KiB chunks).

**Contention** (``busiest_rank`` and ``totals``). The formulas give each rank
its own core and each link its own wire. When a job's P processes (p workers,
plus S servers for ps) share C < P cores on one node, the "links" are memory
copies done by those same cores: a sender copies into shared memory and the
receiver copies out, so a rank's CPU work is the bytes it sends *plus* the
bytes it receives (times beta) plus the bytes it adds (times gamma). MPI ranks
that wait for a message spin, so all P stay runnable and each gets C/P of a
core; the step ends when the busiest rank has done its own work:

    contended time = (P / C) * busiest rank's (messages alpha + (sent + received) beta + added gamma)

Each strategy declares its busiest rank (``busiest_rank``). The other bound,
all ranks' work spread over the C cores, is 1/C of ``totals`` (2 copies per
byte sent); P times the busiest rank's work is never less than that, term by
term, so the busiest rank decides; with P <= C the uncontended formulas hold.
"""
import json
import math
import platform

import numpy as np

from ...comm import names, strategy_class
from ...comm.topology import log2_ceil  # noqa: F401 - part of this module's interface
from ...errors import FirecaffeError
from . import codecs

PROFILE_KEYS = ("alpha_s", "beta_s_per_byte", "gamma_s_per_byte")


def _strategy(comm, n=0, p=1):
    if p < 1 or n < 0:
        raise FirecaffeError(f"cost model needs p >= 1 ranks and n >= 0 bytes, got p={p}, n={n}")
    if comm not in names():
        raise FirecaffeError(f"no cost model for strategy {comm!r}; known: {', '.join(names())}")
    return strategy_class(comm)


def coefficients(comm, n, p, servers=1, **options):
    """``(a, b, c)`` with time = a*alpha + b*beta + c*gamma for one step of n bytes on p workers."""
    return tuple(float(x) for x in _strategy(comm, n, p).cost_coefficients(n, p, servers=servers, **options))


def processes(comm, p, servers=1):
    """MPI processes of one step: p workers, plus the servers for ps."""
    return _strategy(comm, 0, p).processes(p, servers=servers)


def contended(comm, p, servers=1, cores=None):
    """True when the job's processes outnumber ``cores`` (None or 0: never)."""
    return bool(cores) and processes(comm, p, servers) > cores


def totals(comm, n, p, servers=1):
    """``(messages, bytes sent, bytes added)`` summed over all ranks of one step."""
    return tuple(float(x) for x in _strategy(comm, n, p).totals(n, p, servers=servers))


def busiest_rank(comm, n, p, servers=1, **options):
    """``(messages, bytes sent + received, bytes added)`` of the rank with the most CPU work."""
    return tuple(float(x) for x in _strategy(comm, n, p).busiest_rank(n, p, servers=servers, **options))


def traffic(comm, n, p, servers=1):
    """``(per worker, total, busiest rank)`` bytes of one step of n bytes among p workers."""
    return _strategy(comm, n, p).traffic(n, p, servers=servers)


def terms(comm, n, p, servers=1, cores=None, **options):
    """``(a, b, c)`` of ``coefficients``, or of the contended time when processes outnumber ``cores``."""
    if contended(comm, p, servers, cores):
        scale = processes(comm, p, servers) / cores
        return tuple(scale * x for x in busiest_rank(comm, n, p, servers, **options))
    return coefficients(comm, n, p, servers, **options)


def layout(record):
    """The options of a measured record that its strategy's formula reads (hier: ranks per node, inter)."""
    return {"ranks_per_node": record.get("ranks_per_node") or 1, "inter": record.get("inter") or "tree"}


def predict(comm, n, p, profile, servers=1, compress="none", **options):
    """Predicted seconds of one step of n bytes on p workers on ``profile``.

    A profile with ``cores`` (fitted with ``bench fit --cores``) describes ranks
    sharing that many cores, see ``busiest_rank``; without it (a cluster profile
    from --bandwidth/--latency) contention is off. ``compress``: the codec on the
    wire (insight/bench/codecs.py), whose delta the profile must have.
    """
    if codecs.family(compress) != "none":
        return codecs.predict(comm, n, p, profile, servers, compress, **options)
    a, b, c = terms(comm, n, p, servers, profile.get("cores"), **options)
    return a * profile["alpha_s"] + b * profile["beta_s_per_byte"] + c * profile["gamma_s_per_byte"]


def default_cores(records):
    """This machine's core count if every record was measured on it (its ``host``), else None."""
    import os
    import platform
    hosts = {record.get("host") for record in records}
    return os.cpu_count() if records and hosts == {platform.node()} else None


def read_json(path, what):
    """The JSON in ``path``; a FirecaffeError naming ``what`` and the path if unreadable."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except OSError as exc:
        raise FirecaffeError(f"cannot read {what} {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise FirecaffeError(f"{what} file {path} is not JSON: {exc}") from None
    except UnicodeDecodeError:
        raise FirecaffeError(f"{what} file {path} is not JSON (it holds binary data)") from None


def check_profile(profile, source="profile"):
    """Raise FirecaffeError unless ``profile`` has the three non-negative finite constants."""
    if not isinstance(profile, dict):
        raise FirecaffeError(f"{source}: expected a JSON object with keys {', '.join(PROFILE_KEYS)}")
    missing = [key for key in PROFILE_KEYS if key not in profile]
    if missing:
        raise FirecaffeError(f"{source}: missing {', '.join(missing)} (a profile written by "
                             "`firecaffe bench fit --out` has them)")
    for key in PROFILE_KEYS:
        value = profile[key]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            raise FirecaffeError(f"{source}: {key} must be a non-negative number, got {value!r}")
    cores = profile.get("cores")
    if cores is not None and (not isinstance(cores, int) or isinstance(cores, bool) or cores < 1):
        raise FirecaffeError(f"{source}: cores must be a positive integer or null, got {cores!r}")
    if profile["alpha_s"] == 0 and profile["beta_s_per_byte"] == 0:
        raise FirecaffeError(f"{source}: alpha_s and beta_s_per_byte are both 0: communication would be free")
    codecs.check_deltas(profile, source)
    return profile


def machine_kind():
    """What a profile was measured on: the processor architecture and model (links are not visible here)."""
    model_name = ""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith(("model name", "cpu model", "processor\t: arm")):
                    model_name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{platform.machine()} {model_name or platform.processor() or 'unknown cpu'}".strip()


def check_machine(profile, source, kind=None):
    """Raise unless ``profile`` was measured on this machine kind (a profile without one passes)."""
    recorded = profile.get("machine")
    kind = kind or machine_kind()
    if recorded is not None and recorded != kind:
        raise FirecaffeError(f"--profile {source} was measured on {recorded!r}, this machine is {kind!r}: "
                             "measure this machine (bench comm, bench fit --out), or leave --profile out "
                             "for the built-in probe")
    return profile


def nnls(a, y):
    """Non-negative least squares, exact for the few unknowns here: try every set of free variables."""
    a, y = np.asarray(a, float), np.asarray(y, float)
    cols = a.shape[1]
    best, best_residual = np.zeros(cols), float(np.sum(y ** 2))
    for mask in range(1, 2 ** cols):
        free = [j for j in range(cols) if mask >> j & 1]
        x_free, *_ = np.linalg.lstsq(a[:, free], y, rcond=None)
        if np.any(x_free < 0):
            continue
        x = np.zeros(cols)
        x[free] = x_free
        residual = float(np.sum((a @ x - y) ** 2))
        if residual < best_residual:
            best, best_residual = x, residual
    return best


def fit(records, strategies=None, cores=None, min_bytes=0):
    """Fit alpha, beta, gamma to measured records by non-negative least squares on relative error.

    Each record needs ``comm``, ``bytes``, ``ranks``, ``median_s`` (and
    ``num_servers`` for ps). Rows are divided by the measured time, so a 4 KB
    point weighs as much as a 64 MB one: the fit minimizes squared relative
    error, which is what the per-point error report shows. Records of
    strategies without a model, or on one rank, or below ``min_bytes`` are
    left out. With ``cores``, points whose processes outnumber the cores use
    the contended terms (``terms``).
    """
    rows, times = [], []
    for record in records:
        comm = record["comm"]
        if not modelled(record, min_bytes) or (strategies and comm not in strategies):
            continue
        servers = record.get("num_servers") or 1
        rows.append(list(terms(comm, record["bytes"], record["ranks"], servers, cores, **layout(record))))
        times.append(record["median_s"])
    if len(rows) < 3:
        raise FirecaffeError(f"need at least 3 measured points with 2 or more ranks (and at least "
                             f"{min_bytes} bytes) to fit alpha, beta and gamma, got {len(rows)}")
    a, t = np.array(rows), np.array(times)
    scale = np.abs(a).max(axis=0)
    scale[scale == 0] = 1.0
    x = nnls(a / scale / t[:, None], np.ones_like(t)) / scale
    return {"alpha_s": float(x[0]), "beta_s_per_byte": float(x[1]), "gamma_s_per_byte": float(x[2]),
            "bandwidth_Bps": float(1 / x[1]) if x[1] > 0 else None, "points": len(rows),
            "cores": cores or None, "min_bytes": min_bytes}


def modelled(record, min_bytes=0):
    """Whether the model describes ``record``: a known strategy, at least 2 processes (one
    process moves nothing: the comparator mpi on ps's one worker), a time, enough bytes."""
    return (record["comm"] in names() and record["median_s"] > 0 and record["bytes"] >= min_bytes
            and codecs.family(record.get("compress")) == "none"
            and processes(record["comm"], record["ranks"], record.get("num_servers") or 1) >= 2)


def errors(records, profile, min_bytes=0):
    """Per-point ``(record, predicted_s, relative_error)`` for every record the fit uses."""
    out = []
    for record in records:
        if not modelled(record, min_bytes):
            continue
        predicted = predict(record["comm"], record["bytes"], record["ranks"], profile,
                            record.get("num_servers") or 1, **layout(record))
        out.append((record, predicted, (predicted - record["median_s"]) / record["median_s"]))
    return out
