"""The cost model of compressed gradients: fewer bytes on the wire, a per-byte encode/decode term.

A codec (``--compress``) changes three things in a strategy's formula (model.py):

- the bytes on the links: the formula's messages and bytes are those of the wire
  size ``w(n)`` (fp16/bf16: n/2, int8: n/4 plus one float32 scale per chunk of
  ``INT8_CHUNK`` values; PowerSGD of rank r on a rows x cols matrix: (rows + cols) r
  float32 numbers instead of rows cols);
- the adds stay float32 (every hop decodes, adds, encodes: only the wire is narrow),
  so the gamma term is the uncompressed one (PowerSGD adds its two small factors);
- a new term, ``delta`` seconds per float32 byte encoded and decoded once: each byte
  added is decoded and its sum encoded again, and every rank encodes its gradient once
  and decodes the result once, so ``d = c + n`` with ``c`` the formula's bytes added.
  PowerSGD's work is matrix products, r multiply-adds per gradient number each way,
  so its ``d = r n``.

``delta`` is fitted per codec family (``bench fit`` on ``bench comm --compress`` records)
with alpha, beta and gamma held at the uncompressed fit, which therefore stays the same.
Profiles keep it as ``delta_s_per_byte: {family: seconds per byte}``.
"""
import math

from ...errors import FirecaffeError

FAMILIES = ("none", "fp16", "bf16", "int8", "powersgd")
DEFAULT_POWERSGD_RANK = 4
INT8_CHUNK = 4096          # values sharing one float32 scale


def parse(compress):
    """``(family, rank)`` of a ``--compress`` value: 'none', 'fp16', 'bf16', 'int8', 'powersgd[:RANK]'."""
    text = "none" if compress in (None, "") else str(compress).strip().lower()
    family, _, rank = text.partition(":")
    if family not in FAMILIES or (rank and family != "powersgd"):
        raise FirecaffeError(f"--compress {compress!r}: choose one of none, fp16, bf16, int8, powersgd[:RANK]")
    if family != "powersgd":
        return family, 0
    try:
        rank = int(rank) if rank else DEFAULT_POWERSGD_RANK
    except ValueError:
        raise FirecaffeError(f"--compress {compress!r}: the PowerSGD rank must be a whole number") from None
    if rank < 1:
        raise FirecaffeError(f"--compress {compress!r}: the PowerSGD rank must be at least 1")
    return family, rank


def family(compress):
    return parse(compress)[0]


def square(n):
    """The most square rows x cols matrix of ``n`` float32 bytes (a flat gradient seen as one matrix)."""
    count = n // 4
    rows = int(math.isqrt(count))
    while rows > 1 and count % rows:
        rows -= 1
    return rows, count // max(rows, 1)


def matrices(layers):
    """PowerSGD's matrices of an ``analysis.analyze`` report: each weight of 2 or more axes seen as
    (its first axis, the product of the others), as a convolution's (out, in kh kw)."""
    return [(shape[0], math.prod(shape[1:])) for row in layers for shape in row.get("param_shapes", [])
            if len(shape) >= 2 and shape[0] > 1 and math.prod(shape[1:]) > 1]


def wire_bytes(compress, n, matrices=None):
    """Bytes on the wire for ``n`` bytes of float32 gradient. ``matrices``: PowerSGD's (rows, cols) shapes
    (the rest of the n bytes goes uncompressed); without them the flat gradient is one matrix."""
    kind, rank = parse(compress)
    count = n // 4
    if kind == "none":
        return n
    if kind in ("fp16", "bf16"):
        return 2 * count
    if kind == "int8":
        return count + 4 * math.ceil(count / INT8_CHUNK)
    matrices = matrices if matrices is not None else [square(n)]
    small = count - sum(r * c for r, c in matrices)
    return 4 * (small + sum(min(rank * (r + c), r * c) for r, c in matrices))


def coefficients(comm, n, p, servers=1, cores=None, compress="none", **options):
    """``(a, b, c, d)``: time = a alpha + b beta + c gamma + d delta for one compressed step."""
    from . import model
    kind, rank = parse(compress)
    wire = wire_bytes(compress, n, options.pop("matrices", None))
    a, b, c_wire = model.terms(comm, wire, p, servers, cores, **options)
    if kind == "powersgd":
        return a, b, c_wire, float(rank * n)
    c = model.terms(comm, n, p, servers, cores, **options)[2]
    return a, b, c, c + float(n) if p > 1 else 0.0


def delta(profile, compress):
    """The profile's delta for ``compress``'s family; a clear error where it was never fitted."""
    kind = family(compress)
    deltas = profile.get("delta_s_per_byte") or {}
    if kind not in deltas:
        raise FirecaffeError(f"the profile ({profile.get('source', 'given')}) has no delta for --compress {kind}: "
                             f"fit it from `bench comm --compress {kind}` records (bench fit)")
    return deltas[kind]


def predict(comm, n, p, profile, servers=1, compress="none", **options):
    a, b, c, d = coefficients(comm, n, p, servers, profile.get("cores"), compress, **options)
    return (a * profile["alpha_s"] + b * profile["beta_s_per_byte"] + c * profile["gamma_s_per_byte"]
            + d * delta(profile, compress))


def fit(records, profile):
    """``{family: delta}`` fitted to compressed ``records`` with alpha, beta, gamma held at ``profile``:
    the non-negative delta minimizing the squared relative error of each family's points."""
    from . import model
    sums = {}
    for record in records:
        kind = family(record.get("compress"))
        if kind == "none" or record["median_s"] <= 0 or record["ranks"] < 2:
            continue
        a, b, c, d = coefficients(record["comm"], record["bytes"], record["ranks"], record.get("num_servers") or 1,
                                  profile.get("cores"), record["compress"], **model.layout(record))
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
