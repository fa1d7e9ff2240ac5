"""`--comm auto`: choose the strategy (and bucket size, and compression when asked) from the cost model.

For this net's gradient bytes n, the job's P ranks and K ranks per node, every
candidate configuration is predicted with the fitted alpha-beta-gamma(-delta) model
(insight/bench/model.py: the formulas the strategies declare, contention included
where the profile says how many cores the ranks share) and the fastest is chosen:

    iteration = forward + backward + exposed communication

The compute (forward + backward) is the same for every candidate; it is estimated from
the net's FLOPs and a rate measured on the ranks themselves (``probe``), and matters for
buckets only. Without buckets the whole reduction is exposed. With buckets of B bytes,
backward fills the diff arena front to back (reverse layer order) at an even rate, and a
background thread reduces bucket i once it is full and the one before it is reduced;
what is left after backward ends is exposed.

Candidates are the strategies in which every rank is a worker (a parameter server takes
ranks away from the compute, so ps is left to an explicit ``--comm ps``), hier only with
more than one rank per node and more than one node, GPU-only ones only on a GPU job.
Ties go to the earlier candidate: registry order, no buckets before buckets, smaller
buckets first, uncompressed first.
"""
import dataclasses
import math

from ..comm import registry
from ..comm.compress import make_codec
from ..errors import FirecaffeError
from .bench import codecs, model

BUCKET_MB = (1.0, 4.0, 16.0)     # --bucket-mb auto tries these (and no buckets)
CODECS = ("none", "fp16", "bf16", "int8", "powersgd:4")     # --compress auto tries these


@dataclasses.dataclass(frozen=True)
class Candidate:
    comm: str
    bucket_mb: float = 0.0
    compress: str = "none"

    def describe(self):
        parts = [self.comm]
        parts.append(f"buckets of {self.bucket_mb:g} MB" if self.bucket_mb else "no buckets")
        if self.compress != "none":
            parts.append(f"compress {self.compress}")
        return ", ".join(parts)


@dataclasses.dataclass(frozen=True)
class Prediction:
    candidate: Candidate
    comm_s: float          # the reduction's own time (all buckets)
    exposed_s: float       # the part after backward
    compute_s: float       # forward + backward

    @property
    def iteration_s(self):
        return self.compute_s + self.exposed_s


def candidates(ranks, ranks_per_node=1, comms=None, buckets=(0.0,), compress=("none",), gpu=False, n=None):
    """Every configuration to predict, in tie-break order; buckets of at least ``n`` bytes (the whole
    gradient in one bucket: nothing to overlap) are left out."""
    out = []
    nodes = math.ceil(ranks / max(1, ranks_per_node))
    for name, cls in registry().items():
        if comms is not None:          # a strategy the user named (--bucket-mb auto): only its buckets
            if name not in comms:
                continue
        elif (cls.processes(ranks) != ranks or (cls.needs_gpu and not gpu)
              or (name == "hier" and not (ranks_per_node > 1 and nodes > 1))):
            continue
        sendable = [codec for codec in compress if _sends(cls, codec)]
        for bucket in sorted(buckets):
            if bucket and (not cls.overlaps or (n is not None and bucket * 2**20 >= n)):
                continue
            out.extend(Candidate(name, bucket, codec) for codec in sendable)
    if not out:
        raise FirecaffeError(f"--comm auto: no strategy to choose from on {ranks} rank(s)")
    return out


def _sends(cls, codec):
    """Whether strategy class ``cls`` can send gradients compressed by ``codec`` (comm/compress)."""
    try:
        cls.check_codec(make_codec(codec))
    except FirecaffeError:
        return False
    return True


def _fitting(codecs_, shapes):
    """The codecs of ``codecs_`` that take a net of these parameter shapes (PowerSGD's rank fits every matrix)."""
    from ..comm.compress import layout_from_shapes
    out = []
    for codec in codecs_:
        try:
            make_codec(codec).bind(layout_from_shapes(shapes))
        except FirecaffeError:
            if len(codecs_) == 1:
                raise
            continue
        out.append(codec)
    return out


def exposed(times, backward_s):
    """``(total, exposed)`` seconds of buckets reduced one after another on a background thread while
    backward, ``backward_s`` long, fills them in order; ``times``: each bucket's reduction, with its share
    of the bytes as ``(seconds, fraction)``."""
    done, filled = 0.0, 0.0
    for seconds, fraction in times:
        filled += fraction
        done = max(done, backward_s * filled) + seconds
    return sum(s for s, _ in times), max(0.0, done - backward_s)


def predict(candidate, n, ranks, profile, ranks_per_node=1, compute_s=0.0, backward_share=2 / 3, servers=1,
            shapes=None):
    """The ``Prediction`` of one candidate for a gradient of ``n`` bytes on ``ranks`` workers (``shapes``:
    the net's parameter shapes, for PowerSGD's matrices)."""
    options = dict(ranks_per_node=min(ranks_per_node, ranks), compress=candidate.compress, servers=servers)
    if candidate.compress != "none" and shapes is not None:
        options["shapes"] = shapes
    if not candidate.bucket_mb:
        seconds = model.predict(candidate.comm, n, ranks, profile, **options)
        return Prediction(candidate, seconds, seconds, compute_s)
    size = max(4, int(candidate.bucket_mb * 2**20) // 4 * 4)
    sizes = [size] * (n // size) + ([n % size] if n % size else [])
    times = [(model.predict(candidate.comm, b, ranks, profile, **options), b / n) for b in sizes]
    total, left = exposed(times, compute_s * backward_share)
    return Prediction(candidate, total, left, compute_s)


def rank(configs, n, ranks, profile, ranks_per_node=1, compute_s=0.0, servers=1, shapes=None):
    """Predictions of ``configs``, fastest first (a stable sort: ties keep the candidates' order)."""
    if n <= 0:
        raise FirecaffeError("--comm auto: the net has no learnable parameters, nothing to reduce")
    predictions = [predict(c, n, ranks, profile, ranks_per_node, compute_s, servers=servers, shapes=shapes)
                   for c in configs]
    return sorted(predictions, key=lambda p: p.iteration_s)


def describe_choice(ranked, n, ranks, ranks_per_node, source, what="--comm auto"):
    """Rank 0's lines: the choice, its predicted iteration, the runner-up."""
    best = ranked[0]
    lines = [f"{what}: {best.candidate.describe()} for {n / 2**20:.2f} MiB of gradients on {ranks} rank(s), "
             f"{ranks_per_node} per node ({source}): predicted iteration {best.iteration_s * 1e3:.1f} ms "
             f"(compute {best.compute_s * 1e3:.1f} ms, communication {best.comm_s * 1e3:.1f} ms, "
             f"{best.exposed_s * 1e3:.1f} ms of it exposed)"]
    if len(ranked) > 1:
        second = ranked[1]
        lines.append(f"{what}: runner-up {second.candidate.describe()}: predicted iteration "
                     f"{second.iteration_s * 1e3:.1f} ms ({second.iteration_s / best.iteration_s:.2f}x), "
                     f"of {len(ranked)} configurations")
    return lines


class AutoChooser:
    """What `--comm auto` / `--bucket-mb auto` hand to the data-parallel job (run/parallel.py calls it once
    the net exists, on every rank, before the first iteration), and the report of measured against
    predicted after ``report_after`` iterations (``observe``).

    ``profile_path``: a fitted profile (read and checked here, on every rank, when the command starts);
    None: the built-in probe (bench/probe.py). ``buckets``: the bucket sizes to try (MB, 0: none);
    ``compress``: the codecs to try.
    """

    def __init__(self, profile_path=None, buckets=(0.0,), compress=("none",), report_after=5, kind=None):
        from .predict import load_profile
        self.profile = model.check_machine(load_profile(profile_path), profile_path, kind) if profile_path else None
        if self.profile is not None:
            self.profile["source"] = f"profile {profile_path}"
            for codec in compress:
                if codec != "none":
                    codecs.delta(self.profile, codec)
        self.buckets, self.compress, self.report_after = tuple(buckets), tuple(compress), report_after
        self.best, self.what = None, "--comm auto"

    def __call__(self, world, net, ranks_per_node, comms=None, workers=None, gpu=False):
        """The chosen ``Candidate`` (collective over ``world``); rank 0 logs the choice and the runner-up.
        ``comms``: the strategy the user named (``--bucket-mb auto`` alone); ``workers``: its workers (ps
        takes the other ranks as servers)."""
        from ..core.log import LOGGER
        from .bench import probe
        profile = self.profile if self.profile is not None else probe.measure(world, self.compress)
        compute_s, how = self._compute(world, net)
        choice = None
        if world.Get_rank() == 0:
            n, workers = int(net.diff_arena.nbytes), workers or world.Get_size()
            shapes = [tuple(blob.shape) for blob in net.learnable_params]
            configs = candidates(workers, ranks_per_node, comms, self.buckets, _fitting(self.compress, shapes),
                                 gpu, n)
            ranked = rank(configs, n, workers, profile, ranks_per_node, compute_s,
                          servers=max(1, world.Get_size() - workers), shapes=shapes)
            self.best = ranked[0]
            what = self.what = ("--comm auto" if comms is None else
                                "--compress auto" if len(self.compress) > 1 else "--bucket-mb auto")
            source = f"{profile['source']}; compute {how}"
            for line in describe_choice(ranked, n, workers, ranks_per_node, source, what):
                LOGGER.info(line)
            choice = dataclasses.astuple(ranked[0].candidate)
        return Candidate(*world.bcast(choice, root=0))       # set-up metadata, not the gradient path

    @staticmethod
    def _compute(world, net):
        """Forward + backward seconds of the slowest rank, all timing at once (collective), and how it
        was found: timed on the net itself, or estimated from its FLOPs at the rate of a matrix product."""
        from mpi4py import MPI
        from .analysis import analyze
        from .bench import probe
        timed = probe.forward_backward_s(net)
        slowest = world.allreduce(float("inf") if timed is None else timed, op=MPI.MAX)   # set-up metadata
        if slowest != float("inf"):
            return slowest, "timed"
        return 3.0 * analyze(net)["flops"] / probe.flop_rate(world), "estimated from FLOPs"

    def observe(self, parallel):
        """An ``iteration_end`` hook for rank 0: after ``report_after`` iterations, one line of measured
        iteration and exposed communication (medians) against the prediction."""
        from ..core.log import LOGGER
        import time
        marks, exposed_s = [], []

        def hook(iteration):
            if self.best is None or len(marks) > self.report_after:
                return
            marks.append(time.perf_counter())
            exposed_s.append(max(0.0, parallel.comm_seconds - parallel.hidden_seconds))
            if len(marks) == self.report_after + 1:
                gaps = sorted(b - a for a, b in zip(marks, marks[1:]))
                shown = sorted(exposed_s[1:])
                iteration_s, comm_s = gaps[len(gaps) // 2], shown[len(shown) // 2]
                off = iteration_s / self.best.iteration_s - 1
                LOGGER.info(f"{self.what}: measured iteration {iteration_s * 1e3:.1f} ms against "
                            f"{self.best.iteration_s * 1e3:.1f} ms predicted ({off:+.0%}); "
                            f"exposed communication {comm_s * 1e3:.1f} ms against {self.best.exposed_s * 1e3:.1f} ms "
                            f"(medians of iterations {iteration - self.report_after + 1}-{iteration})")
        return hook
