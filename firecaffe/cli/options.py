"""Options and device choice shared by the commands."""
import math

import click

from ..core import backend
from ..errors import FirecaffeError

GPU_OPTION = click.option("--gpu", type=int, is_flag=False, flag_value=0, default=None, metavar="[ID]",
                          help="Run on GPU ID (default 0) through CuPy.")
CPU_OPTION = click.option("--cpu", is_flag=True, help="Run on the CPU with NumPy (the default).")
GLOBAL_BATCH_OPTION = click.option("--global-batch", type=click.IntRange(min=1),
                                   help="Total batch, divided among ranks.")
PS_SERVERS_OPTION = click.option("--ps-servers", type=click.IntRange(min=1), default=1, show_default=True,
                                 help="Server ranks for --comm ps (taken from the job's ranks).")
INTER_OPTION = click.option("--inter", type=click.Choice(["tree", "ring"]), default="tree", show_default=True,
                            help="With --comm hier: the strategy among the node leaders, over the network.")



def _compress_value(ctx, param, value):
    """--compress: checked as click parses it (one line naming what works), kept as text."""
    from ..comm.compress import parse_compress
    if str(value).strip().lower() == "auto" and param.metavar.endswith("|auto"):
        return "auto"
    try:
        return parse_compress(value).name
    except FirecaffeError as error:
        raise click.BadParameter(str(error).split(": ", 1)[1], ctx=ctx, param=param) from None


COMPRESS_OPTION = click.option(
    "--compress", default="none", show_default=True, callback=_compress_value,
    metavar="none|fp16|bf16|int8|powersgd[:RANK]",
    help="Send gradients compressed: fp16/bf16 (16 bits on the wire, added in float32 at every hop), int8 "
         "(a scale per 256 values, error feedback) or PowerSGD of rank RANK (default 4; weight matrices as "
         "rank-RANK products, error feedback). mpi takes only powersgd, ps all but powersgd, nccl none.")
COMPRESS_OR_AUTO_OPTION = click.option(          # train's: auto, the cost model chooses (only when asked)
    "--compress", default="none", show_default=True, callback=_compress_value,
    metavar="none|fp16|bf16|int8|powersgd[:RANK]|auto",
    help="Send gradients compressed: fp16/bf16 (16 bits on the wire, added in float32 at every hop), int8 "
         "(a scale per 256 values, error feedback) or PowerSGD of rank RANK (default 4; weight matrices as "
         "rank-RANK products, error feedback). mpi takes only powersgd, ps all but powersgd, nccl none. "
         "auto: the cost model chooses among them (compression changes the numbers: only when asked).")
COMPRESS_START_OPTION = click.option(
    "--compress-start", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
    help="With --compress: the first N iterations go uncompressed.")


class PhaseType(click.ParamType):
    """A net phase by Caffe's name, TRAIN or TEST, given in any case."""
    name = "phase"

    def get_metavar(self, *args, **kwargs):
        return "[TRAIN|TEST]"

    def convert(self, value, param, ctx):
        phase = str(value).upper()
        if phase not in ("TRAIN", "TEST"):
            self.fail(f"{value!r} is not a phase: give TRAIN or TEST (any case)", param, ctx)
        return phase


def phase_option(default, help):
    """``--phase`` shown and defaulted with Caffe's phase names."""
    return click.option("--phase", type=PhaseType(), default=default, show_default=True, help=help)


class Amount(click.ParamType):
    """A number of seconds or megabytes: not NaN, not negative; 0 means off; a value above 0 must
    be at least ``smallest`` (a smaller one is a mistake that would make training crawl)."""
    name = "number"

    def __init__(self, unit, smallest=0.0, why="", allow_infinite=False):
        self.unit, self.smallest, self.why, self.allow_infinite = unit, smallest, why, allow_infinite

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            number = float(value)
        else:
            try:
                number = float(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a number of {self.unit}", param, ctx)
        if math.isnan(number) or number < 0 or (math.isinf(number) and not self.allow_infinite):
            self.fail(f"{value} is not a number of {self.unit} (0 or more{'' if self.allow_infinite else ', finite'}; "
                      "0 turns it off)", param, ctx)
        if 0 < number < self.smallest:
            self.fail(f"{value} {self.unit} is below the smallest useful value, {self.smallest:g}{self.why}; "
                      "give 0 to turn it off", param, ctx)
        return number


# --bucket-mb: each bucket is one reduction; tiny ones are thousands of latency-bound messages per step
BUCKET_MB = Amount("MB", 0.01, " (each bucket is one reduction that pays the network's latency; "
                               "typical sizes are 1 to 25 MB)")


class BucketSize(click.ParamType):
    """``--bucket-mb``: a size in MB (BUCKET_MB's rules) or ``auto`` (the cost model chooses)."""
    name = "MB|auto"

    def convert(self, value, param, ctx):
        if str(value).strip().lower() == "auto":
            return "auto"
        return BUCKET_MB.convert(value, param, ctx)


BUCKET_MB_OR_AUTO = BucketSize()
# --stall-timeout: seconds; inf waits forever, as 0 does
STALL_SECONDS = Amount("seconds", allow_infinite=True)


def choose_device(cpu, gpu, solver_param=None, local_rank=0):
    if cpu and gpu is not None:
        raise click.UsageError("give --cpu or --gpu, not both")
    from_solver = (gpu is None and not cpu and solver_param is not None and solver_param.HasField("solver_mode")
                   and solver_param.solver_mode == solver_param.GPU)
    if from_solver:
        gpu = solver_param.device_id
    if gpu is not None:
        try:
            backend.set_mode_gpu(gpu + local_rank, wrap=local_rank > 0)
        except FirecaffeError as exc:
            if not from_solver:
                raise
            detail = str(exc).replace("--gpu needs", "that needs").replace("--gpu: ", "")
            raise FirecaffeError("the solver asks for GPU mode (solver_mode: GPU) but " + detail.replace(
                ", or run with --cpu", "; run with --cpu or set solver_mode: CPU")) from None
    else:
        backend.set_mode_cpu()


def strategy_names(text, many=False):
    """``--comm`` checked against the strategy registry (firecaffe/comm): a name, or a comma list if ``many``."""
    from ..comm import strategy_class
    from ..errors import FirecaffeError
    names = [part.strip() for part in str(text).split(",") if part.strip()] if many else [text]
    if not names:
        raise click.BadParameter(f"{text!r}: empty list of strategies", param_hint="'--comm'")
    try:
        return [strategy_class(name).name for name in names] if many else strategy_class(text).name
    except FirecaffeError as error:
        raise click.BadParameter(str(error), param_hint="'--comm'") from None


def comm_option(many=False, auto=False):
    """``--comm``: its choices and default come from the strategy registry; ``auto``: also ``auto``."""
    from ..comm import names
    if auto:
        return click.option("--comm", default=names()[0], show_default=True,
                            callback=lambda ctx, param, value: value if value == "auto" else strategy_names(value),
                            help=f"Gradient reduction under MPI: {', '.join(names())}, or auto (the cost "
                                 "model chooses, with --profile or a short probe of the links).")
    if many:
        return click.option("--comm", "comms", default=",".join(names(default_only=True)), show_default=True,
                            callback=lambda ctx, param, value: strategy_names(value, many=True),
                            help=f"Strategies to time, comma-separated ({', '.join(names())}).")
    return click.option("--comm", default=names()[0], show_default=True,
                        callback=lambda ctx, param, value: strategy_names(value),
                        help=f"Gradient reduction under MPI: {', '.join(names())}.")
