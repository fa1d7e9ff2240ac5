"""Alpha-beta-gamma cost model of one allreduce, and its fit to measurements.

A message of m bytes costs ``alpha + m * beta`` on one link (latency plus
inverse bandwidth) and adding m bytes of float32 costs ``m * gamma``. Every
formula below is linear in (alpha, beta, gamma), so ``coefficients`` returns
the three multipliers for n bytes on p ranks and the fit is a linear
least-squares problem. With L = ceil(log2 p):

    tree   binomial reduce to rank 0, then binomial broadcast (FireCaffe):
           2 L (alpha + n beta) + L n gamma
    ring   reduce-scatter + allgather: 2 (p-1) alpha + 2 (p-1)/p n beta + (p-1)/p n gamma
    mpi    Rabenseifner (recursive halving reduce-scatter + doubling allgather):
           2 L alpha + 2 (p-1)/p n beta + (p-1)/p n gamma
    ps     S servers, W = p workers; server s holds n/S bytes, takes W pushes
           and answers W pulls through its one link, and adds W-1 of them;
           a worker sends and receives S pieces of n/S:
           2 max(W, S) alpha + 2 max(W/S, 1) n beta + (W-1) n/S gamma
    nccl   as ring.

``tree_pipelined`` models our tree as it runs (firecaffe.comm.tree): the array
moves in k chunks of c bytes, and the root, which has L children, receives
and sends L chunks per step, so once the pipe is full each chunk costs
L (alpha + c beta + c gamma) on the root's link (sends overlap receives):
    (k + 2 L - 2) L (alpha + c beta) + k L c gamma.

**Contention** (``busiest_rank`` and ``totals``). The formulas above give each
rank its own core and each link its own wire. When a job's P processes
(p workers, plus S servers for ps) share C < P cores on one node, the "links"
are memory copies done by those same cores: a sender copies into shared
memory and the receiver copies out, so a rank's CPU work is the bytes it
sends *plus* the bytes it receives (times beta) plus the bytes it adds
(times gamma). MPI ranks that wait for a message spin, so all P stay runnable
and each gets C/P of a core; the step ends when the busiest rank has done its
own work:

    contended time = (P / C) * busiest rank's (messages alpha + (sent + received) beta + added gamma)

    busiest rank   messages  sent + received             added
    tree (root)    2 L       2 L n                       L n
    ring           2 (p-1)   4 (p-1)/p n                 (p-1)/p n
    mpi            2 L       4 (p-1)/p n                 (p-1)/p n           (p a power of two)
                   2 L'+ 2   2 n + 4 (q-1)/q n           n + (q-1)/q n       (q = 2^L' < p: the ranks
                                                                             that fold the p-q extra ones in)
    ps             2 max(W,S)  2 max(W/S, 1) n           (W-1) n/S           (a server, or a worker if S > W)

The other bound, all ranks' work spread over the C cores, is 1/C of
``totals`` (2 copies per byte sent): every strategy sends 2 (p-1) n bytes
(ps: 2 W n) and adds (p-1) n (ps: (W-1) n). P times the busiest rank's work
is never less than that, term by term, so the busiest rank decides; with
P <= C the uncontended formulas hold.
"""
import json
import math

import numpy as np

from ...errors import FirecaffeError

STRATEGIES = ("tree", "ring", "mpi", "ps", "nccl", "tree_pipelined")
PROFILE_KEYS = ("alpha_s", "beta_s_per_byte", "gamma_s_per_byte")
DEFAULT_CHUNK_BYTES = 512 * 1024


def log2_ceil(p):
    return max(0, math.ceil(math.log2(p))) if p >= 1 else 0


def coefficients(comm, n, p, servers=1, chunk_bytes=DEFAULT_CHUNK_BYTES):
    """``(a, b, c)`` with time = a*alpha + b*beta + c*gamma for an allreduce of n bytes on p ranks.

    For ps, p is the number of workers and ``servers`` the number of server ranks.
    """
    if p < 1 or n < 0:
        raise FirecaffeError(f"cost model needs p >= 1 ranks and n >= 0 bytes, got p={p}, n={n}")
    if comm == "ps":
        if servers < 1:
            raise FirecaffeError(f"a parameter server needs at least 1 server, got {servers}")
        w, s = p, servers
        return 2.0 * max(w, s), 2.0 * max(w / s, 1.0) * n, (w - 1) * n / s
    if p == 1:
        return 0.0, 0.0, 0.0
    levels = log2_ceil(p)
    if comm == "tree":
        return 2.0 * levels, 2.0 * levels * n, float(levels * n)
    if comm == "tree_pipelined":
        chunk = min(chunk_bytes, n) if n else 0
        k = math.ceil(n / chunk) if chunk else 0
        steps = k + 2 * levels - 2
        return float(steps * levels), float(steps * levels * chunk), float(k * levels * chunk)
    if comm in ("ring", "nccl"):
        return 2.0 * (p - 1), 2.0 * (p - 1) / p * n, (p - 1) / p * n
    if comm == "mpi":
        return 2.0 * levels, 2.0 * (p - 1) / p * n, (p - 1) / p * n
    raise FirecaffeError(f"no cost model for strategy {comm!r}; known: {', '.join(STRATEGIES)}")


def processes(comm, p, servers=1):
    """MPI processes of one allreduce: p ranks, or p workers plus the servers for ps."""
    return p + (servers if comm == "ps" else 0)


def contended(comm, p, servers=1, cores=None):
    """True when the job's processes outnumber ``cores`` (None or 0: never)."""
    return bool(cores) and processes(comm, p, servers) > cores


def totals(comm, n, p, servers=1):
    """``(messages, bytes sent, bytes added)`` summed over all ranks of one allreduce (flat tree, no chunks)."""
    if comm == "ps":
        return 2.0 * p * servers, 2.0 * p * n, float((p - 1) * n)
    if p == 1:
        return 0.0, 0.0, 0.0
    messages = {"tree": 2 * (p - 1), "tree_pipelined": 2 * (p - 1), "ring": 2 * p * (p - 1),
                "nccl": 2 * p * (p - 1), "mpi": 2 * p * log2_ceil(p)}
    if comm not in messages:
        raise FirecaffeError(f"no cost model for strategy {comm!r}; known: {', '.join(STRATEGIES)}")
    return float(messages[comm]), 2.0 * (p - 1) * n, float((p - 1) * n)


def busiest_rank(comm, n, p, servers=1):
    """``(messages, bytes sent + received, bytes added)`` of the rank with the most CPU work."""
    if comm == "ps":
        w, s = p, servers
        return 2.0 * max(w, s), 2.0 * max(w / s, 1.0) * n, (w - 1) * n / s
    if p == 1:
        return 0.0, 0.0, 0.0
    levels = log2_ceil(p)
    if comm in ("tree", "tree_pipelined"):
        return 2.0 * levels, 2.0 * levels * n, float(levels * n)
    if comm in ("ring", "nccl"):
        return 2.0 * (p - 1), 4.0 * (p - 1) / p * n, (p - 1) / p * n
    if comm == "mpi":
        q = 1 << (p.bit_length() - 1)
        if q == p:
            return 2.0 * levels, 4.0 * (p - 1) / p * n, (p - 1) / p * n
        return 2.0 * log2_ceil(q) + 2, 2.0 * n + 4.0 * (q - 1) / q * n, n + (q - 1) / q * n
    raise FirecaffeError(f"no cost model for strategy {comm!r}; known: {', '.join(STRATEGIES)}")


def terms(comm, n, p, servers=1, cores=None):
    """``(a, b, c)`` of ``coefficients``, or of the contended time when processes outnumber ``cores``."""
    if contended(comm, p, servers, cores):
        scale = processes(comm, p, servers) / cores
        return tuple(scale * x for x in busiest_rank(comm, n, p, servers))
    return coefficients(comm, n, p, servers)


def predict(comm, n, p, profile, servers=1):
    """Predicted seconds of one allreduce of n bytes on p ranks (workers for ps) on ``profile``.

    A profile with ``cores`` (fitted with ``bench fit --cores``) describes ranks
    sharing that many cores, see ``busiest_rank``; without it (a cluster profile
    from --bandwidth/--latency) contention is off.
    """
    a, b, c = terms(comm, n, p, servers, profile.get("cores"))
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
        if comm not in STRATEGIES or (strategies and comm not in strategies):
            continue
        if record["ranks"] < 2 and comm != "ps" or record["median_s"] <= 0 or record["bytes"] < min_bytes:
            continue
        servers = record.get("num_servers") or 1
        rows.append(list(terms(comm, record["bytes"], record["ranks"], servers, cores)))
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


def errors(records, profile, min_bytes=0):
    """Per-point ``(record, predicted_s, relative_error)`` for every modelled record."""
    out = []
    for record in records:
        if record["comm"] not in STRATEGIES or record["median_s"] <= 0 or record["bytes"] < min_bytes:
            continue
        predicted = predict(record["comm"], record["bytes"], record["ranks"], profile,
                            record.get("num_servers") or 1)
        out.append((record, predicted, (predicted - record["median_s"]) / record["median_s"]))
    return out
