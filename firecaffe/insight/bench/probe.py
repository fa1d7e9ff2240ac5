"""A short measurement of this job's links and cores, for `--comm auto` without a fitted profile.

Collective over ``world`` (every rank calls it; a second or so on 100 Mb/s links):

- links: ranks r and r + P/2 play ping-pong, all pairs at once (each pair crosses the
  network when the job spans nodes), with messages that grow until one way takes 30 ms;
  the slowest pair's one-way times give beta (the slope of the last two sizes: a token
  bucket's burst falls out) and alpha (a 4 KiB message's time beyond beta);
- gamma: every rank adds float32 arrays at once (so ranks that share cores share them here
  too); the slowest rank's seconds per byte;
- compute: every rank multiplies float32 matrices at once; the slowest rank's FLOP/s, which
  with the net's FLOPs estimates forward + backward where the net cannot be timed itself
  (``forward_backward_s``; insight/auto.py);
- codecs (``--compress auto``): each codec's encode and decode per byte (its delta).

The result is a profile as ``bench fit --out`` writes it (contention is in the measured
numbers, so ``cores`` is left out), plus ``flops_per_s``.
"""
import time

import numpy as np


SMALL, FIRST, LARGEST = 4096, 262144, 32 * 2**20    # bytes of the ping-pong messages
ENOUGH_S = 0.03                      # ... which grow until one way takes this long
REPEATS = 3
ADD_BYTES = 4 * 2**20
GEMM = 384


def _pingpong(world, partner, first, nbytes, repeats):
    """Smallest round trip of ``repeats`` (seconds); ``first``: this rank sends first."""
    buf = np.zeros(nbytes // 4, np.float32)
    best = float("inf")
    for _ in range(repeats + 1):          # the first exchange opens the connection: untimed
        began = time.perf_counter()
        if first:
            world.Send(buf, dest=partner, tag=71)
            world.Recv(buf, source=partner, tag=71)
        else:
            world.Recv(buf, source=partner, tag=71)
            world.Send(buf, dest=partner, tag=71)
        best = min(best, time.perf_counter() - began) if _ else best
    return best


def _slowest(world, values):
    from mpi4py import MPI
    values = np.asarray(values, np.float64)
    out = np.empty_like(values)
    world.Allreduce(values, out, op=MPI.MAX)
    return out


def links(world, small=SMALL, first=FIRST, enough_s=ENOUGH_S, largest=LARGEST, repeats=REPEATS):
    """``(alpha, beta)`` from ping-pong between rank pairs (r, r + P/2), all pairs at once, the slowest pair's.

    Messages double from ``first`` bytes until one way takes ``enough_s`` (or ``largest`` bytes): beta is
    the slope between the last two sizes, so that a link's burst allowance (a token bucket lets its first
    bytes through at the wire's speed) falls out; alpha is what the ``small`` message takes beyond that.
    """
    rank, size = world.Get_rank(), world.Get_size()
    half = size // 2
    paired = rank < 2 * half
    partner = (rank + half if rank < half else rank - half) if paired else None

    def one_way(nbytes):
        mine = _pingpong(world, partner, rank < half, nbytes, repeats) / 2 if paired else 0.0
        return float(_slowest(world, [mine])[0])

    times = {small: one_way(small)}
    nbytes = first
    while True:
        times[nbytes] = one_way(nbytes)
        if times[nbytes] >= enough_s or 2 * nbytes > largest:
            break
        nbytes *= 2
    beta = max(0.0, (times[nbytes] - times[nbytes // 2]) / (nbytes // 2)) if nbytes // 2 in times else \
        times[nbytes] / nbytes
    return max(0.0, times[small] - small * beta), beta


def add_rate(world, nbytes=ADD_BYTES, repeats=REPEATS):
    """Seconds per byte of a float32 add, the slowest rank's."""
    a, b = np.ones(nbytes // 4, np.float32), np.ones(nbytes // 4, np.float32)
    np.add(a, b, out=a)
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        np.add(a, b, out=a)
        best = min(best, time.perf_counter() - began)
    return float(_slowest(world, [best / nbytes])[0])


def flop_rate(world, n=GEMM, repeats=REPEATS):
    """FLOP/s of a float32 matrix product, the slowest rank's."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    out = a @ a
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        np.matmul(a, a, out=out)
        best = min(best, time.perf_counter() - began)
    return float(2.0 * n ** 3 / _slowest(world, [best])[0])


def codec_deltas(world, kinds, nbytes=ADD_BYTES, repeats=REPEATS):
    """``{family: delta}`` of the codecs ``kinds`` (``--compress`` names), the slowest rank's: an elementwise
    codec's encode plus decode-and-add per float32 byte; PowerSGD's two matrix products per byte and rank
    (its ``d = r n``, insight/bench/codecs.py) on one square-ish matrix of ``nbytes``."""
    from ...comm.compress import make_codec, square_layout
    values = np.random.default_rng(1).standard_normal(nbytes // 4).astype(np.float32)
    out, deltas = np.zeros_like(values), {}
    for kind in kinds:
        codec = make_codec(kind)
        if codec.lossless:
            continue
        best = float("inf")
        for attempt in range(repeats + 1):
            began = time.perf_counter()
            if codec.elementwise:
                codec.decode_add(codec.encode(values), out)
            else:
                rows, cols = square_layout(values.size)[0].shape
                matrix = values[:rows * cols].reshape(rows, cols)
                p = matrix @ np.ones((cols, codec.spec.rank), np.float32)
                matrix.T @ p
            if attempt:
                best = min(best, time.perf_counter() - began)
        per_byte = best / nbytes / (codec.spec.rank if not codec.elementwise else 1)
        deltas[codec.spec.kind] = float(_slowest(world, [per_byte])[0])
    return deltas


def measure(world, codecs=()):
    """The probe's profile (every rank gets the same)."""
    began = time.perf_counter()
    alpha, beta = links(world) if world.Get_size() > 1 else (0.0, 0.0)
    gamma = add_rate(world)
    flops = flop_rate(world)
    profile = {"alpha_s": alpha, "beta_s_per_byte": beta, "gamma_s_per_byte": gamma, "cores": None,
               "flops_per_s": flops}
    deltas = codec_deltas(world, codecs)
    if deltas:
        profile["delta_s_per_byte"] = deltas
    return dict(profile, source=f"built-in probe, {time.perf_counter() - began:.1f} s")


SIDE_EFFECTS = ("HDF5Output", "Python")      # layers that may write outside the net: never run for timing


def forward_backward_s(net, repeats=2):
    """Seconds of one forward + backward of ``net``'s layers after its data layers (the fastest of
    ``repeats``, after one untimed), on whatever the data tops hold (zeros), leaving the weights, the
    gradients and the random stream as they were. None where that cannot be promised: a layer of
    ``SIDE_EFFECTS``, or arrays on a GPU (whose random state is not saved here)."""
    from ...core import backend
    if not isinstance(net.param_arena, np.ndarray) or any(layer.type in SIDE_EFFECTS for layer in net.layers):
        return None
    start = 0
    layers = net.layers
    while start < len(layers) and (layers[start].type == "Input" or getattr(layers[start], "is_data", False)):
        start += 1
    if start == len(net.layers):
        return None
    for top in net.top_vecs[:start]:
        for blob in top:
            blob.data[...] = 0
    params, diff = net.param_arena.copy(), net.diff_arena.copy()
    generator = backend.rng().bit_generator
    state = generator.state
    best = float("inf")
    try:
        for attempt in range(repeats + 1):
            began = time.perf_counter()
            net.forward_range(start)
            net.backward_range(end=start)
            if attempt:
                best = min(best, time.perf_counter() - began)
    finally:
        net.param_arena[...] = params
        net.diff_arena[...] = diff
        generator.state = state
    return best
