"""The cost model of compressed gradients: fewer bytes on the wire, a per-byte encode/decode term.

A codec (``--compress``) changes three things in a strategy's formula (model.py):

- the bytes on the links: the formula's messages and bytes are those of the wire
  size ``w(n)`` the codec declares (comm/compress: fp16/bf16 n/2, int8 n/4 plus a
  float32 scale per block); PowerSGD of rank r runs two allreduces of float32 factors,
  P (rows r per matrix, with the vectors uncompressed) and Q (cols r per matrix), so
  its terms are the strategy's formula twice, on those sizes;
- the gamma term counts the bytes a hop handles as they arrive, the wire's: fitted on
  links, gamma is mostly per-byte work of receiving and copying (0.1 GB/s at 100 Mb/s,
  far slower than an add), which shrinks with the wire (measured on 2-8 nodes at
  100 Mb/s: fp16 on the tree, dbtree and ring at 16 MiB took 0.49-0.52x of float32);
- a new term, ``delta`` seconds per float32 byte encoded and decoded once: every hop
  decodes what it receives, adds in float32 and encodes the sum, and every rank encodes
  its gradient once and decodes the result once, so ``d = c32 + n`` with ``c32`` the
  formula's float32 bytes added.
  PowerSGD's work is matrix products, r multiply-adds per gradient number each way,
  so its ``d = r n``.

``delta`` is fitted per codec family (``bench fit`` on ``bench comm --compress`` records)
with alpha, beta and gamma held at the uncompressed fit, which therefore stays the same.
Profiles keep it as ``delta_s_per_byte: {family: seconds per byte}``.
"""
import math

from ...comm.compress import make_codec, parse_compress, square_layout
from ...comm.compress.powersgd import matrix_shape
from ...errors import FirecaffeError

FAMILIES = ("none", "fp16", "bf16", "int8", "powersgd")


def parse(compress):
    """``(family, rank)`` of a ``--compress`` value (comm/compress's parse_compress: its one-line errors)."""
    spec = parse_compress(compress)
    return spec.kind, spec.rank or 0


def family(compress):
    return parse(compress)[0]


def shapes_of(layers):
    """The parameter shapes of an ``analysis.analyze`` report (what PowerSGD sees as matrices or vectors)."""
    return [tuple(shape) for row in layers for shape in row.get("param_shapes", [])]


def wire_bytes(compress, n, shapes=None):
    """Bytes on the wire for ``n`` bytes of float32 gradient (the codec's own count, comm/compress);
    ``shapes``: the parameters' shapes (PowerSGD), else the flat gradient is one square-ish matrix."""
    return int(make_codec(compress).wire_bytes(n, shapes))


def powersgd_rounds(rank, n, shapes=None):
    """PowerSGD's two allreduces, in bytes: P (rows r per matrix, with the vectors) and Q (cols r)."""
    shapes = [param.shape for param in square_layout(n // 4)] if shapes is None else shapes
    first = second = 0
    for shape in shapes:
        matrix = matrix_shape(shape)
        if matrix:
            first, second = first + 4 * matrix[0] * rank, second + 4 * matrix[1] * rank
        else:
            first += 4 * math.prod(shape)
    return first, second


def coefficients(comm, n, p, servers=1, cores=None, compress="none", **options):
    """``(a, b, c, d)``: time = a alpha + b beta + c gamma + d delta for one compressed step."""
    from . import model
    kind, rank = parse(compress)
    shapes = options.pop("shapes", None)
    if kind == "powersgd":
        rounds = [model.terms(comm, size, p, servers, cores, **options) for size in powersgd_rounds(rank, n, shapes)]
        a, b, c = (sum(terms[i] for terms in rounds) for i in range(3))
        return a, b, c, float(rank * n) if p > 1 else 0.0
    a, b, c = model.terms(comm, wire_bytes(compress, n, shapes), p, servers, cores, **options)
    added = model.terms(comm, n, p, servers, cores, **options)[2]
    return a, b, c, added + float(n) if p > 1 else 0.0


def delta(profile, compress):
    """The profile's delta for ``compress``'s family; a clear error where it was never fitted."""
    kind = family(compress)
    deltas = profile.get("delta_s_per_byte") or {}
    if kind not in deltas:
        raise FirecaffeError(f"the profile ({profile.get('source', 'given')}) has no delta for --compress {kind}: "
                             f"fit it from `bench comm --compress {kind}` records (bench fit)")
    return deltas[kind]


def cpu_share(comm, p, servers=1, compute_cores=None):
    """How many times longer a rank's encoding and decoding take when the job's processes share
    ``compute_cores`` cores (emulated nodes on one machine; None: a core each)."""
    from . import model
    return max(1.0, model.processes(comm, p, servers) / compute_cores) if compute_cores else 1.0


def predict(comm, n, p, profile, servers=1, compress="none", compute_cores=None, **options):
    """Seconds of one compressed step; the delta term, each rank's own CPU work, is stretched by
    ``cpu_share`` where the ranks share ``compute_cores`` (the links are not shared)."""
    a, b, c, d = coefficients(comm, n, p, servers, profile.get("cores"), compress, **options)
    return (a * profile["alpha_s"] + b * profile["beta_s_per_byte"] + c * profile["gamma_s_per_byte"]
            + d * cpu_share(comm, p, servers, compute_cores) * delta(profile, compress))


def fit(records, profile, compute_cores=None):
    """``{family: delta}`` fitted to compressed ``records`` with alpha, beta, gamma held at ``profile``:
    the non-negative delta minimizing the squared relative error of each family's points.
    ``compute_cores``: the records' ranks shared that many cores (``cpu_share``)."""
    from . import model
    sums = {}
    for record in records:
        kind = family(record.get("compress"))
        if kind == "none" or record["median_s"] <= 0 or record["ranks"] < 2:
            continue
        a, b, c, d = coefficients(record["comm"], record["bytes"], record["ranks"], record.get("num_servers") or 1,
                                  profile.get("cores"), record["compress"], **model.layout(record))
        d *= cpu_share(record["comm"], record["ranks"], record.get("num_servers") or 1, compute_cores)
        base = a * profile["alpha_s"] + b * profile["beta_s_per_byte"] + c * profile["gamma_s_per_byte"]
        t = record["median_s"]
        top, bottom, points = sums.get(kind, (0.0, 0.0, 0))
        sums[kind] = (top + d / t * (1 - base / t), bottom + (d / t) ** 2, points + 1)
    return {kind: max(0.0, top / bottom) if bottom else 0.0 for kind, (top, bottom, _) in sums.items()}


def check_deltas(profile, source):
    deltas = profile.get("delta_s_per_byte")
    if deltas is None:
        return
    if not isinstance(deltas, dict):
        raise FirecaffeError(f"{source}: delta_s_per_byte must be an object {{codec: seconds per byte}}")
    for kind, value in deltas.items():
        if kind not in FAMILIES[1:] or not isinstance(value, (int, float)) or isinstance(value, bool) \
                or not math.isfinite(value) or value < 0:
            raise FirecaffeError(f"{source}: delta_s_per_byte[{kind!r}] must be a codec of "
                                 f"{', '.join(FAMILIES[1:])} with a non-negative number, got {value!r}")
