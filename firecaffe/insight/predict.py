"""How far a net scales: bytes each strategy moves, predicted communication time, speedup.

Used by ``firecaffe analyze NET --workers 32,128 [--profile FILE | --bandwidth 10GB/s
--latency 2us] [--compute-ms T]``. For a gradient of n bytes (the net's
parameter bytes) reduced among p workers, per iteration, each strategy of the
registry (firecaffe/comm) that runs without a GPU gives the bytes it moves per
worker, in total and on its busiest rank (its ``traffic``), and its time from
the alpha-beta-gamma model (firecaffe.insight.bench.model). Strong
scaling at a fixed global batch: one iteration takes T on 1 worker, so on p
workers it takes T/p + comm(p); speedup = T / (T/p + comm(p)), efficiency =
speedup / p. Computation and communication are not overlapped (an upper bound
on time, as in FireCaffe's analysis).
"""
import re

from ..comm import names
from .bench import codecs, model
from ..errors import FirecaffeError

DEFAULT_BANDWIDTH = "10GB/s"
DEFAULT_LATENCY = "2us"

_SIZE_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ns": 1e-9}
_RATE_UNITS = {"k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_NUMBER = r"(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"


def parse_size(text):
    """Bytes in ``text``: '4096', '4K', '16M', '1.5G', '16MB', '16MiB' (K, M, G are powers of 1024)."""
    match = re.fullmatch(_NUMBER + r"\s*([kKmMgGtT]?)(?:i?[bB])?", str(text).strip())
    if not match:
        raise FirecaffeError(f"cannot read size {text!r}: give bytes as a number with an optional "
                             "K, M or G suffix (powers of 1024), e.g. 4096, 4K, 16M, 1.5G")
    value = float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    if value != int(value):
        raise FirecaffeError(f"size {text!r} is not a whole number of bytes")
    if value <= 0:
        raise FirecaffeError(f"size {text!r} must be more than 0 bytes")
    return int(value)


def parse_time(text):
    """Seconds in ``text``: '2us', '0.5ms', '1e-6s', '3ns', '2 µs'. A unit is required."""
    match = re.fullmatch(_NUMBER + r"\s*([a-zµμ]+)", str(text).strip())
    if not match or match.group(2) not in _TIME_UNITS:
        raise FirecaffeError(f"cannot read time {text!r}: give a number and a unit "
                             f"({', '.join(u for u in _TIME_UNITS if u != 'μs')}), e.g. 2us or 0.5ms")
    return float(match.group(1)) * _TIME_UNITS[match.group(2)]


def parse_bandwidth(text):
    """Bytes per second in ``text``: '10GB/s', '1.25 GB/s', '100Gb/s' (bits), '12GiB/s', '500MB/s'.

    Rates use decimal prefixes (1 GB/s = 1e9 bytes/s) as network links are sold;
    'GiB/s' is binary; a lower-case 'b' means bits.
    """
    match = re.fullmatch(_NUMBER + r"\s*([kKmMgGtT])?(i)?([bB])(?:ps|/s)", str(text).strip())
    if not match:
        raise FirecaffeError(f"cannot read bandwidth {text!r}: give a rate such as 10GB/s, 100Gb/s "
                             "(bits), 12GiB/s or 500MB/s")
    number, prefix, binary, unit = match.groups()
    scale = 1.0
    if prefix:
        scale = 2 ** (10 * " kmgt".index(prefix.lower())) if binary else _RATE_UNITS[prefix.lower()]
    value = float(number) * scale / (8 if unit == "b" else 1)
    if not value > 0:
        raise FirecaffeError(f"bandwidth {text!r} must be more than 0")
    return value


def parse_workers(text):
    """'32' or '8,32,128' -> [8, 32, 128]: positive worker counts."""
    try:
        workers = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise FirecaffeError(f"cannot read worker counts {text!r}: give integers separated by commas, "
                             "e.g. 8,32,128") from None
    if not workers or any(p < 1 for p in workers):
        raise FirecaffeError(f"worker counts {text!r} must be positive integers, e.g. 8,32,128")
    return sorted(set(workers))


def load_profile(path):
    """A machine profile written by ``firecaffe bench fit --out``."""
    profile = model.read_json(path, "profile")
    return model.check_profile(profile, str(path))


def make_profile(profile_path=None, bandwidth=None, latency=None, gamma=None):
    """A profile from a fitted file, overridden by explicit bandwidth/latency; 10GB/s, 2us by default.

    Without a profile file the reduction arithmetic is taken as free (gamma = 0)
    unless ``gamma`` (seconds per byte) is given.
    """
    profile = dict(load_profile(profile_path)) if profile_path else {
        "alpha_s": parse_time(DEFAULT_LATENCY), "beta_s_per_byte": 1 / parse_bandwidth(DEFAULT_BANDWIDTH),
        "gamma_s_per_byte": 0.0, "source": f"default {DEFAULT_BANDWIDTH}, {DEFAULT_LATENCY}"}
    if profile_path:
        profile["source"] = str(profile_path)
    if bandwidth is not None:
        profile["beta_s_per_byte"] = 1 / parse_bandwidth(bandwidth)
    if latency is not None:
        profile["alpha_s"] = parse_time(latency)
    if gamma is not None:
        profile["gamma_s_per_byte"] = float(gamma)
    if bandwidth is not None or latency is not None:
        profile["source"] = ", ".join(filter(None, [
            profile_path and str(profile_path), bandwidth, latency]))
    return model.check_profile(profile)


def add_prediction(report, workers, profile, compute_ms=None, comms=None, servers=1, ranks_per_node=1,
                   compute_cores=None, compress="none", fixed_ms=None):
    """Add ``report['predicted']``: one record per strategy and worker count; returns the report.

    ``report`` is an ``analysis.analyze`` dict (its ``param_bytes`` is the gradient size).
    ``comms`` defaults to every registered strategy that runs without a GPU. ``ranks_per_node``
    is the layout the formulas read (hier's node count, the trees' chunk size). The compute of
    an iteration at the global batch, ``compute_ms`` on one worker, is split over the P workers;
    ``compute_cores`` says they share that many processors (more ranks than GPUs or cores), so
    it goes only ``min(P, compute_cores)`` times faster, and what each rank does on its own CPU
    (``fixed_ms``, the codec's encoding) takes ``P / compute_cores`` times as long once the
    ranks outnumber the processors. ``fixed_ms``: the part of ``compute_ms`` that does not shrink
    with the batch (the update of every weight, per-layer overheads), which every worker pays in
    full (Amdahl's serial part; measured by timing one worker at two batch sizes). ``compress``:
    the codec on the wire (insight/bench/codecs.py; PowerSGD reads the weight matrices from the
    report's layers), whose delta the profile must have; bytes are then those on the wire.
    """
    if compute_ms is not None and not compute_ms > 0:
        raise FirecaffeError(f"--compute-ms must be more than 0, got {compute_ms}")
    if compute_cores is not None and not compute_cores >= 1:
        raise FirecaffeError(f"--compute-cores must be at least 1, got {compute_cores}")
    if fixed_ms is not None and (compute_ms is None or not 0 <= fixed_ms < compute_ms):
        raise FirecaffeError(f"--fixed-ms must be at least 0 and less than --compute-ms "
                             f"({compute_ms}), got {fixed_ms}")
    if not ranks_per_node >= 1:
        raise FirecaffeError(f"--ppn must be at least 1, got {ranks_per_node}")
    n = report["param_bytes"]
    codec = {}
    if codecs.family(compress) != "none":
        codecs.delta(profile, compress)
        codec = {"compress": compress, "shapes": codecs.shapes_of(report.get("layers", [])),
                 "compute_cores": compute_cores}
    wire = codecs.wire_bytes(compress, n, codec.get("shapes"))
    records = []
    for comm in comms or names(default_only=True):
        for p in workers:
            layout = {"ranks_per_node": min(ranks_per_node, p), **codec}
            seconds = model.predict(comm, n, p, profile, servers, **layout)
            shared = max(1.0, p / compute_cores) if compute_cores else 1.0
            per_worker, total, busiest = model.traffic(comm, wire, p, servers)
            record = {"comm": comm, "workers": p, "seconds": seconds, "bytes": n,
                      "bytes_per_worker": per_worker, "bytes_total": total, "bytes_busiest": busiest}
            if model.processes(comm, p, servers) > p:
                record["num_servers"] = servers
            if compute_ms is not None:
                compute, fixed = compute_ms / 1e3, (fixed_ms or 0.0) / 1e3
                share = (compute - fixed) / min(p, compute_cores or p) + fixed * shared
                iteration = share + seconds
                record.update(compute_s=share, iteration_s=iteration,
                              speedup=compute / iteration, efficiency=compute / iteration / p)
            records.append(record)
    report["predicted"] = records
    report["profile"] = {key: profile[key] for key in (*model.PROFILE_KEYS, "source", "delta_s_per_byte")
                         if key in profile}
    report["compress"] = compress
    if fixed_ms:
        report["fixed_ms"] = fixed_ms
    return report


UNITS = "sizes in MiB (2^20 bytes), rates in GB/s (10^9 bytes/s)"


def _mib(n):
    return f"{n / 2**20:,.3f}"


def rate(seconds_per_byte):
    """A per-byte time as a rate: '10 GB/s', or 'infinite' for zero."""
    return f"{1 / seconds_per_byte / 1e9:.3g} GB/s" if seconds_per_byte else "infinite"


def format_prediction(report):
    """The prediction as a text table (in the units of the table above it: MiB, GB/s)."""
    profile = report["profile"]
    gamma = profile["gamma_s_per_byte"]
    reduction = f", reduction {rate(gamma)}" if gamma else ", reduction free"
    codec = report.get("compress", "none")
    on_wire = f", compressed {codec} (MiB on the wire)" if codec != "none" else ""
    lines = [f"gradient {_mib(report['param_bytes'])} MiB per iteration{on_wire}; network {rate(profile['beta_s_per_byte'])}, "
             f"latency {profile['alpha_s'] * 1e6:.3g} us{reduction} ({profile.get('source', 'given')}); {UNITS}"]
    with_speedup = any("speedup" in r for r in report["predicted"])
    header = (f"{'comm':6s} {'workers':>7s} {'MiB/worker':>11s} {'MiB total':>11s} {'MiB busiest':>11s} "
              f"{'comm ms':>9s}")
    lines.append(header + (f" {'iter ms':>9s} {'speedup':>8s} {'eff':>6s}" if with_speedup else ""))
    for r in report["predicted"]:
        line = (f"{r['comm']:6s} {r['workers']:7d} {_mib(r['bytes_per_worker']):>11s} "
                f"{_mib(r['bytes_total']):>11s} {_mib(r['bytes_busiest']):>11s} {r['seconds'] * 1e3:9.2f}")
        if "speedup" in r:
            line += f" {r['iteration_s'] * 1e3:9.2f} {r['speedup']:8.2f} {r['efficiency']:6.1%}"
        lines.append(line)
    return "\n".join(lines)
