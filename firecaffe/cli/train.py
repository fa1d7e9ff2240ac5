"""`firecaffe train`: Caffe's `caffe train`, single-process or data-parallel under MPI.

    firecaffe train SOLVER.prototxt [--weights W | --snapshot S] [--max-iter N]
    firecaffe train NET.prototxt --base-lr 0.01 --max-iter 1000   (a bare net: solver from flags)
    mpirun -n 16 firecaffe train SOLVER.prototxt --comm tree --global-batch 1024
"""
import os
import re

import click

from ..errors import FirecaffeError
from ..core.log import LOGGER, setup as setup_logging
from .options import (BUCKET_MB_OR_AUTO, COMPRESS_OR_AUTO_OPTION, COMPRESS_START_OPTION, CPU_OPTION,
                      GLOBAL_BATCH_OPTION, GPU_OPTION, INTER_OPTION, PS_SERVERS_OPTION, STALL_SECONDS,
                      choose_device, comm_option)


# flag -> SolverParameter field, for overriding a solver file or describing a bare net
SOLVER_FLAGS = {
    "base_lr": float, "max_iter": int, "lr_policy": str, "momentum": float, "weight_decay": float,
    "gamma": float, "power": float, "stepsize": int, "display": int, "test_interval": int,
    "snapshot_prefix": str, "iter_size": int, "random_seed": int, "type": str,
    "clip_gradients": float, "average_loss": int, "regularization_type": str,
}
BARE_NET_DEFAULTS = {"base_lr": 0.01, "max_iter": 1000, "lr_policy": "fixed", "momentum": 0.9,
                     "display": 100, "snapshot_after_train": False}


def load_solver_param(target, solver_flag):
    """SolverParameter from a solver file, or one made around a bare net file."""
    from ..proto import caffe_pb2, io
    path = solver_flag or target
    if path is None:
        raise click.UsageError("give a solver (or net) prototxt: firecaffe train SOLVER.prototxt")
    try:
        with open(path) as f:
            text = f.read()
    except OSError as exc:
        raise FirecaffeError(f"{path}: cannot read ({exc.strerror})") from None
    if solver_flag is None and _looks_like_net(text):
        io.read_net(path)           # a syntax error is reported at the net's own line and field
        param = caffe_pb2.SolverParameter(net=path)
        for key, value in BARE_NET_DEFAULTS.items():
            setattr(param, key, value)
        return param, None
    return io.read_solver(path), path


_NET_FIELDS = re.compile(r"^\s*(layers?|input|input_shape|input_dim)\s*[{:]", re.MULTILINE)
_SOLVER_FIELDS = re.compile(r"^\s*(net|train_net|net_param|train_net_param|base_lr|max_iter|lr_policy)\s*[{:]",
                            re.MULTILINE)


def _looks_like_net(text):
    """A net has top-level layers or inputs and none of a solver's own fields (even with a typo)."""
    from google.protobuf import text_format
    from ..proto import caffe_pb2
    try:
        text_format.Parse(text, caffe_pb2.SolverParameter())
        return False
    except text_format.ParseError:
        return bool(_NET_FIELDS.search(text)) and not _SOLVER_FIELDS.search(text)


@click.command()
@click.argument("target", required=False, type=click.Path())
@click.option("--solver", "solver_flag", type=click.Path(), help="Solver prototxt (as caffe's --solver).")
@click.option("--weights", type=click.Path(), help="Initialize from these weights (.caffemodel[.h5], or .fcz).")
@click.option("--snapshot", type=click.Path(), help="Resume from this .solverstate[.h5].")
@click.option("--resume-latest", "resume_prefix", is_flag=False, flag_value="", metavar="[PREFIX]",
              help="Resume from the newest complete snapshot of PREFIX (default: the solver's "
                   "snapshot_prefix); start fresh (from --weights, if given) when there is none.")
@click.option("--max-iter", type=int, help="Iterations to train (solver's max_iter).")
@click.option("--base-lr", type=float, help="Starting learning rate (base_lr).")
@click.option("--lr-policy", help="Learning rate policy: fixed, step, exp, inv, multistep, poly, sigmoid "
              "(lr_policy).")
@click.option("--momentum", type=float, help="Momentum (momentum; Adam's beta1).")
@click.option("--weight-decay", type=float, help="Weight decay (weight_decay).")
@click.option("--gamma", type=float, help="Rate factor of the step, exp, inv, multistep and sigmoid "
              "policies (gamma).")
@click.option("--power", type=float, help="Exponent of the inv and poly policies (power).")
@click.option("--stepsize", type=int, help="Iterations per step of the step and sigmoid policies (stepsize).")
@click.option("--display", type=int, help="Log the loss every N iterations, 0: never (display).")
@click.option("--test-interval", type=int, help="Test every N iterations, 0: never (test_interval).")
@click.option("--test-iter", type=int, multiple=True, help="Batches per test (one per test net).")
@click.option("--snapshot-every", "snapshot_every", type=int, help="Snapshot interval (solver's `snapshot`).")
@click.option("--snapshot-prefix", help="Path prefix of snapshot files (snapshot_prefix).")
@click.option("--snapshot-format", type=click.Choice(["BINARYPROTO", "HDF5"], case_sensitive=False),
              help="Snapshot file format (snapshot_format).")
@click.option("--iter-size", type=int, help="Accumulate gradients over N batches per update (iter_size).")
@click.option("--random-seed", "--seed", "random_seed", type=int, help="Seed for fillers, dropout and "
              "shuffling (random_seed).")
@click.option("--type", "type", help="Solver type: SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam.")
@click.option("--clip-gradients", type=float, help="Scale gradients down to this L2 norm, -1: off "
              "(clip_gradients).")
@click.option("--average-loss", type=int, help="Display the loss averaged over N iterations (average_loss).")
@click.option("--regularization-type", type=click.Choice(["L1", "L2"]), help="Weight decay's norm "
              "(regularization_type).")
@comm_option(auto=True)
@COMPRESS_OR_AUTO_OPTION
@COMPRESS_START_OPTION
@click.option("--profile", type=click.Path(dir_okay=False), help="With --comm auto, --bucket-mb auto or "
              "--compress auto: the profile `bench fit --out` wrote for these links (default: a probe of a "
              "few seconds).")
@GLOBAL_BATCH_OPTION
@PS_SERVERS_OPTION
@INTER_OPTION
@click.option("--bucket-mb", type=BUCKET_MB_OR_AUTO, default=0.0, show_default=True,
              help="Reduce gradients in buckets of this size while backward runs (0: after backward; "
                   "auto: the cost model chooses).")
@click.option("--check-consistency", type=click.IntRange(min=0), default=0,
              help="Every N steps, check that all ranks hold identical weights.")
@click.option("--stall-timeout", type=STALL_SECONDS, default=300, show_default=True,
              help="Abort, saying where, when a rank waits longer than this for the others (0: never).")
@click.option("--snapshot-keep", type=click.IntRange(min=0), default=0,
              help="Keep only the newest N snapshots (0: all).")
@click.option("--lr-scaling", type=click.Choice(["none", "linear"]), default="none", show_default=True,
              help="linear: multiply base_lr by global batch / the net's batch (Goyal et al. 2017).")
@click.option("--warmup-iters", type=click.IntRange(min=0), default=0,
              help="With --lr-scaling linear: ramp the rate up from base_lr over N iterations.")
@click.option("--progress/--no-progress", "show_progress", default=None,
              help="Force the progress bar (with ETA) on or off; default: on an interactive terminal.")
@click.option("--sigint-effect", type=click.Choice(["stop", "snapshot", "none"]), default="stop",
              show_default=True, help="What SIGINT (Ctrl-C) does, on every rank at the same iteration.")
@click.option("--sighup-effect", type=click.Choice(["stop", "snapshot", "none"]), default="snapshot",
              show_default=True, help="What SIGHUP does. SIGTERM and SIGUSR1 (scancel, SLURM time "
              "limits) always snapshot and stop.")
@click.option("--log", "log_file", type=click.Path(dir_okay=False, writable=True),
              help="Also append the log to this file (every rank: rank 0's lines, the others' warnings), "
                   "written by the ranks themselves: a log that a Ctrl-C on `| tee` cannot cut short.")
@click.option("--timeline", type=click.Path(dir_okay=False),
              help="Write a Chrome/Perfetto trace (JSON) of every rank's layers, buckets, waits and updates.")
@click.option("--timeline-iters", type=click.IntRange(min=1), default=20, show_default=True,
              help="With --timeline: record this many iterations (from the first).")
@CPU_OPTION
@GPU_OPTION
def train(target, solver_flag, weights, snapshot, resume_prefix, test_iter, snapshot_every,
          snapshot_format, comm, global_batch, ps_servers, bucket_mb, check_consistency, cpu, gpu, log_file,
          **flags):
    """Train a net from a solver prototxt (or a bare net prototxt with solver flags)."""
    from ..core.options import RunOptions
    from ..run import mpi_util
    from ..run.signals import Signals, finish
    from ..run.job import startup_line
    bucket_auto = bucket_mb == "auto"
    options = RunOptions.build(
        comm=comm, ps_servers=ps_servers, bucket_mb=0.0 if bucket_auto else bucket_mb, bucket_auto=bucket_auto,
        check_consistency=check_consistency, global_batch=global_batch, profile=flags.pop("profile"),
        **{key: flags.pop(key) for key in (
            "inter", "compress", "compress_start", "stall_timeout", "snapshot_keep", "lr_scaling", "warmup_iters",
            "show_progress",
            "sigint_effect", "sighup_effect", "timeline", "timeline_iters")})
    from ..proto import caffe_pb2
    from ..solvers import Solver, snapshot as snapshots
    if weights and snapshot:
        raise click.UsageError("give --weights or --snapshot, not both (a snapshot already holds the weights)")
    from ..run.process import RankProcess
    rank_process = click.get_current_context().find_root().obj or RankProcess()   # made by main()
    signals = Signals(options.sigint_effect, options.sighup_effect,        # first: a SLURM warning may
                      last_words=rank_process.last_words,                 # come during start-up
                      ignore_after=("SIGUSR1",) if rank_process.entry_point else ()).install()
    click.get_current_context().call_on_close(signals.uninstall)
    world = mpi_util.world()
    signals.refresh()
    rank = world.Get_rank() if world is not None else 0
    size = world.Get_size() if world is not None else 1
    if world is not None and size > 1:
        mpi_util.abort_on_error(rank_process.failure_context)
    try:
        setup_logging(rank, size, log_file=log_file)
    except OSError as error:
        raise FirecaffeError(f"--log {log_file}: cannot append to it ({error.strerror})") from None
    if size == 1 and os.environ.get("SLURM_NTASKS", "1").isdigit() and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        LOGGER.warning(f"SLURM started {os.environ['SLURM_NTASKS']} tasks but this one sees an MPI world of 1: "
                       "each task trains alone. Launch with srun --mpi=pmi2 (or mpirun) so the ranks connect.")
    from ..comm import strategy_class
    chooser = _chooser(options, size)             # a bad profile: one line, before any work
    least = 1 if comm == "auto" else strategy_class(comm).processes(1, servers=ps_servers)   # a worker, its servers
    if size == 1 and least > 1:           # (under MPI, the strategy checks its own counts)
        raise FirecaffeError(f"--comm {comm} needs at least {least} ranks (one worker and {least - 1} "
                             f"server rank(s)), this job has {size}: mpirun -n {least} firecaffe train ...")
    param, solver_path = load_solver_param(target, solver_flag)
    for key, value in flags.items():
        if value is not None:
            setattr(param, key, SOLVER_FLAGS[key](value))
    if snapshot_every is not None:
        param.snapshot = snapshot_every
    if snapshot_format:
        param.snapshot_format = getattr(caffe_pb2.SolverParameter, snapshot_format.upper())
    if test_iter:
        del param.test_iter[:]
        param.test_iter.extend(test_iter)
        if not param.test_interval:
            param.test_interval = param.max_iter or 1
    from ..run.parallel import make_parallel
    parallel = make_parallel(world if size > 1 or (comm != "auto" and strategy_class(comm).needs_gpu) else None,
                             options, last_words=rank_process.last_words, chooser=chooser,
                             failure_context=rank_process.failure_context)
    signals.snapshot_on_stop = param.snapshot_after_train
    signals.connect(world if parallel is not None else None, options.stall_timeout)
    from ..run.timeline import Timeline
    timeline = Timeline(options.timeline, options.timeline_iters, world if size > 1 else None) \
        if options.timeline else None
    if parallel is not None and not parallel.is_worker:
        choose_device(True, None)          # parameter servers only add and update: host memory
    else:
        choose_device(cpu, gpu, param, local_rank=parallel.local_rank if parallel is not None else 0)
    solver = Solver(param, path=solver_path, parallel=parallel, options=options)
    solver.hooks.add("iteration_end", signals.agree)
    solver.hooks.add("snapshot", lambda iteration, path: signals.tell(f"iteration {iteration}, writing the snapshot {path}"))
    resume = snapshot
    if resume_prefix is not None:
        resume_prefix = resume_prefix or snapshots.prefix_of(solver)
        resume = snapshots.latest(resume_prefix)
        if resume is None:
            LOGGER.info(f"--resume-latest: no complete snapshot of {resume_prefix} yet; starting fresh")
        elif weights:
            LOGGER.info(f"--resume-latest: resuming from {resume}; --weights {weights} not used")
            weights = None
    startup_line(parallel, solver, parallel.comm_name if parallel is not None else comm)
    if chooser is not None and solver.is_root and parallel is not None:
        solver.hooks.add("iteration_end", chooser.observe(parallel))
    if solver.is_root and (parallel is None or parallel.is_worker):
        snapshots.check_writable(solver)
    if weights:
        solver.net.copy_from(weights)
        if parallel is not None:
            parallel.broadcast_weights(solver.net)
    if resume:
        solver.restore(resume)
        solver.compare_resumed_batch(global_batch is not None)
    if timeline is not None:
        timeline.attach(solver)
    solver.solve()                 # parameter-server ranks too: the strategy gives them their part
    if timeline is not None:
        written = timeline.write()           # collective: rank 0 writes every rank's events
        if written:
            LOGGER.info(f"Timeline: {written}")
    if parallel is not None:
        parallel.close()
    signals.close()
    if solver.stopped is not None:
        written = solver.last_snapshot if solver.stopped.snapshot else None
        finish(solver.stopped, solver.iter, written, is_root=solver.is_root, last_words=rank_process.last_words)


def _chooser(options, size):
    """The cost model's chooser for --comm auto, --bucket-mb auto, --compress auto (None when none of
    them, or one process)."""
    if "auto" not in (options.comm, options.compress) and not options.bucket_auto:
        if options.profile:
            raise click.UsageError("--profile is for --comm auto, --bucket-mb auto or --compress auto")
        return None
    if size == 1:
        LOGGER.info("--comm auto: one process, nothing to reduce")
        return None
    from ..insight.auto import BUCKET_MB, CODECS, AutoChooser
    buckets = (0.0, *BUCKET_MB) if options.bucket_auto else (options.bucket_mb,)
    return AutoChooser(options.profile, buckets, CODECS if options.compress == "auto" else (options.compress,))
