"""The settings of one run, in one frozen object, and the one place the environment is read.

``RunOptions`` holds what shapes a training run beyond the solver file: the strategy
and its buckets and waits, the stall timeout, snapshots kept, signal effects, the
learning-rate scaling, progress and the timeline. The command line builds it once
(``firecaffe train``'s flags), pycaffe's solver classes use the defaults; both go
through ``RunOptions.build``, which also reads the ``FIRECAFFE_*`` variables that
steer a run. Constructors take the object; nothing sets a setting on an object after
it is built, and no module below the command line reads the environment for one.

``environment()`` holds the process-wide variables (threads, logging, progress) that
layers and data readers consult when they are built; it is read here.
"""
import dataclasses
import os
from typing import Optional

from ..errors import FirecaffeError

WAITS = ("spin", "sleep")
SIGNAL_EFFECTS = ("stop", "snapshot", "none")


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """One run's settings (see the module's docstring); ``dataclasses.replace`` makes a changed copy."""

    comm: str = "tree"                   # --comm: the gradient-reduction strategy, or auto (insight/auto.py)
    ps_servers: int = 1                  # --ps-servers
    inter: str = "tree"                  # --inter: hier's strategy among node leaders
    bucket_mb: float = 0.0               # --bucket-mb: reduce in buckets during backward (0: after)
    bucket_auto: bool = False            # --bucket-mb auto: the cost model chooses the bucket size
    profile: Optional[str] = None        # --profile: the fitted profile --comm auto predicts with (None: probe)
    compress: str = "none"               # --compress: none, fp16, bf16, int8, powersgd[:RANK] (comm/compress)
    compress_start: int = 0              # --compress-start N: the first N iterations uncompressed
    wait: str = "spin"                   # FIRECAFFE_WAIT: how the strategy's own waits wait
    bucket_wait: str = "sleep"           # FIRECAFFE_BUCKET_WAIT: how the bucket thread's waits wait
    cuda_aware_mpi: bool = False         # FIRECAFFE_CUDA_AWARE_MPI=1: device memory straight to MPI
    check_consistency: int = 0           # --check-consistency N
    stall_timeout: float = 300.0         # --stall-timeout (0: never)
    snapshot_keep: int = 0               # --snapshot-keep (0: all)
    global_batch: Optional[int] = None   # --global-batch
    lr_scaling: str = "none"             # --lr-scaling
    warmup_iters: int = 0                # --warmup-iters
    show_progress: Optional[bool] = None  # --progress/--no-progress (None: on a terminal)
    sigint_effect: str = "stop"          # --sigint-effect
    sighup_effect: str = "snapshot"      # --sighup-effect
    timeline: Optional[str] = None       # --timeline FILE
    timeline_iters: int = 20             # --timeline-iters

    @classmethod
    def build(cls, environ=None, **given):
        """The options of a run: ``given`` (flags; None means "not given") over the environment over
        the defaults. One clear error for a bad value, before any work."""
        env = os.environ if environ is None else environ
        values = {
            "wait": _choice(env, "FIRECAFFE_WAIT", "spin", WAITS,
                            "spin (MPI's own waits, the default) or sleep (for ranks that share too few "
                            "cores, as on an emulated cluster)"),
            "bucket_wait": _choice(env, "FIRECAFFE_BUCKET_WAIT", "sleep", WAITS,
                                   "sleep (the default: the bucket thread leaves the core to backward) or spin"),
            "cuda_aware_mpi": env.get("FIRECAFFE_CUDA_AWARE_MPI", "").strip() == "1",
        }
        unknown = set(given) - {field.name for field in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"RunOptions has no setting(s) {', '.join(sorted(unknown))}")
        values.update({key: value for key, value in given.items() if value is not None})
        return cls(**values)

    def __post_init__(self):
        for name, allowed in (("wait", WAITS), ("bucket_wait", WAITS), ("sigint_effect", SIGNAL_EFFECTS),
                              ("sighup_effect", SIGNAL_EFFECTS), ("lr_scaling", ("none", "linear"))):
            if getattr(self, name) not in allowed:
                raise FirecaffeError(f"{name} {getattr(self, name)!r}: choose one of {', '.join(allowed)}")
        # (the codec's name is checked where codecs live, comm/compress, when the strategy is made)
        if isinstance(self.compress_start, bool) or not isinstance(self.compress_start, int) or self.compress_start < 0:
            raise FirecaffeError(f"--compress-start {self.compress_start!r}: give the number of uncompressed "
                                 "iterations first, 0 or more")


@dataclasses.dataclass(frozen=True)
class Environment:
    """Process-wide settings from the environment (read once: ``environment()``)."""

    eltwise_threads: int = 1             # FIRECAFFE_ELTWISE_THREADS (ops/_threads.py)
    decode_threads: Optional[int] = None  # FIRECAFFE_DECODE_THREADS (data/prefetch.py; None: by cores)
    log_level: Optional[str] = None      # FIRECAFFE_LOG_LEVEL
    no_progress: bool = False            # FIRECAFFE_NO_PROGRESS: never draw a progress bar
    mpi_init_timeout: float = 300.0      # FIRECAFFE_MPI_INIT_TIMEOUT: seconds MPI_Init may wait (0: forever)
    cluster_dir: Optional[str] = None    # FIRECAFFE_CLUSTER_DIR: where `firecaffe cluster` keeps its state
    dnnl_lib: Optional[str] = None       # FIRECAFFE_DNNL_LIB: the libdnnl to load, or off (ops/dnnl)
    fuse_relu: bool = True               # FIRECAFFE_FUSE_RELU=0 turns off the ReLU fused into the convolution
                                         # before it as oneDNN's post-op (engine/fusion.py)
    fuse_norm: bool = True               # FIRECAFFE_FUSE_NORM=0 runs BatchNorm -> Scale (-> ReLU) as separate
                                         # passes, not as one chain (engine/fusion.py)
    sparse_density: float = 0.10         # FIRECAFFE_SPARSE_DENSITY: InnerProduct weights this sparse or
                                         # sparser run a CSR forward where no weight gradient is needed
                                         # (ops/sparse_ip.py); 0: never


def read_environment(environ=None):
    env = os.environ if environ is None else environ
    decode = env.get("FIRECAFFE_DECODE_THREADS", "").strip()
    return Environment(
        eltwise_threads=max(1, min(_integer(env, "FIRECAFFE_ELTWISE_THREADS", 1), 64)),
        decode_threads=max(0, _integer(env, "FIRECAFFE_DECODE_THREADS", 0)) if decode else None,
        log_level=env.get("FIRECAFFE_LOG_LEVEL") or None,
        no_progress=bool(env.get("FIRECAFFE_NO_PROGRESS")),
        mpi_init_timeout=_number(env, "FIRECAFFE_MPI_INIT_TIMEOUT", 300.0),
        cluster_dir=env.get("FIRECAFFE_CLUSTER_DIR") or None,
        dnnl_lib=env.get("FIRECAFFE_DNNL_LIB"),
        fuse_relu=env.get("FIRECAFFE_FUSE_RELU", "1").strip().lower() not in ("0", "off", "no", "false"),
        fuse_norm=env.get("FIRECAFFE_FUSE_NORM", "1").strip().lower() not in ("0", "off", "no", "false"),
        sparse_density=_fraction(env, "FIRECAFFE_SPARSE_DENSITY", 0.10))


def environment():
    """This process's ``Environment``, read now (callers ask once per object they build)."""
    return read_environment()


def _choice(env, name, default, allowed, advice):
    value = env.get(name, "").strip().lower() or default
    if value not in allowed:
        raise FirecaffeError(f"{name}={value!r}: choose {advice}")
    return value


def _integer(env, name, default):
    return _parsed(env, name, default, int, "give a whole number")


def _number(env, name, default):
    return _parsed(env, name, default, float, "give a number of seconds")


def _fraction(env, name, default):
    value = _parsed(env, name, default, float, "give a density between 0 and 1")
    if not 0.0 <= value <= 1.0:
        raise FirecaffeError(f"{name}={value!r}: give a density between 0 and 1 (0: never)")
    return value


def _parsed(env, name, default, kind, advice):
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        return kind(text)
    except ValueError:
        raise FirecaffeError(f"{name}={text!r}: {advice}") from None
