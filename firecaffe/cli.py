"""The `firecaffe` command: train, test, time, analyze (and bench, design).

Errors meant for people (FirecaffeError) print as one line and exit 1; under
MPI a failing rank takes the whole job down with its rank named.
"""
import json
import sys

import click

from . import backend
from .bench.cli import bench
from .design import design
from .errors import FirecaffeError
from .log import LOGGER, setup as setup_logging
from .predict import apply_prediction, format_prediction, prediction_options

GPU_OPTION = click.option("--gpu", type=int, is_flag=False, flag_value=0, default=None, metavar="[ID]",
                          help="Run on GPU ID (default 0) through CuPy.")
CPU_OPTION = click.option("--cpu", is_flag=True, help="Run on the CPU with NumPy (the default).")


def choose_device(cpu, gpu, solver_param=None, local_rank=0):
    if cpu and gpu is not None:
        raise click.UsageError("give --cpu or --gpu, not both")
    if (gpu is None and not cpu and solver_param is not None and solver_param.HasField("solver_mode")
            and solver_param.solver_mode == solver_param.GPU):
        gpu = solver_param.device_id
    if gpu is not None:
        backend.set_mode_gpu(gpu + local_rank, wrap=local_rank > 0)
    else:
        backend.set_mode_cpu()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="firecaffe")
def cli():
    """Train and measure Caffe networks on NumPy/CuPy, data-parallel over MPI."""


@cli.command()
@click.option("--model", required=True, type=click.Path(), help="Net prototxt (TEST phase).")
@click.option("--weights", type=click.Path(), help=".caffemodel or .caffemodel.h5 to test.")
@click.option("--iterations", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--phase", type=click.Choice(["TRAIN", "TEST"], case_sensitive=False), default="TEST")
@CPU_OPTION
@GPU_OPTION
def test(model, weights, iterations, phase, cpu, gpu):
    """Score a model, printing every output of every batch and the means (as `caffe test`)."""
    from .net import Net
    setup_logging()
    choose_device(cpu, gpu)
    net = Net(model, weights=weights, phase=phase.upper())
    if not weights:
        LOGGER.warning("no --weights given: testing the net's initial (random) weights")
    totals, loss = {}, 0.0
    weights_of = net.loss_weights_by_blob()
    for i in range(iterations):
        loss += net.forward_range()
        for name in net.outputs:
            values = backend.to_host(net.blobs[name].data).ravel()
            for k, v in enumerate(values):
                LOGGER.info(f"Batch {i}, {name} = {float(v):.6g}")
            totals[name] = totals.get(name, 0) + values.astype(float)
    LOGGER.info(f"Loss: {loss / iterations:.6g}")
    for name, total in totals.items():
        for v in total / iterations:
            w = weights_of.get(name)
            extra = f" (* {w:g} = {w * v:.6g} loss)" if w else ""
            LOGGER.info(f"{name} = {v:.6g}{extra}")


@cli.command("time")
@click.option("--model", required=True, type=click.Path(), help="Net prototxt.")
@click.option("--iterations", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--phase", type=click.Choice(["TRAIN", "TEST"], case_sensitive=False), default="TRAIN")
@click.option("--weights", type=click.Path(), help="Optional weights.")
@CPU_OPTION
@GPU_OPTION
def time_cmd(model, iterations, phase, weights, cpu, gpu):
    """Time forward and backward of every layer (as `caffe time`)."""
    from .net import Net
    from .timing import time_net
    setup_logging()
    choose_device(cpu, gpu)
    net = Net(model, weights=weights, phase=phase.upper())
    time_net(net, iterations)


@cli.command()
@click.argument("model", type=click.Path())
@click.option("--phase", type=click.Choice(["TRAIN", "TEST"], case_sensitive=False), default="TEST",
              show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@prediction_options
def analyze(model, phase, as_json, **prediction):
    """Per-layer output shapes, parameters, bytes and forward FLOPs of a net; with
    --workers, the bytes each strategy moves and its predicted time and speedup."""
    from .analysis import analyze as analyze_net, format_table
    from .net import Net
    setup_logging(level="WARNING")
    backend.set_mode_cpu()
    report = analyze_net(Net(model, phase=phase.upper()))
    predicted = apply_prediction(report, **prediction)
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(format_table(report))
    if predicted:
        click.echo("\n" + format_prediction(report))


cli.add_command(bench)
cli.add_command(design)


def main(argv=None):
    """Entry point: run the CLI; print FirecaffeErrors without a traceback."""
    from .train import train  # noqa: F401  (registers `firecaffe train`)
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except FirecaffeError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted")
    except MemoryError:
        _fail("out of memory: reduce batch_size (per rank) or use more ranks")


def _fail(message):
    from . import mpi_util
    world = mpi_util.world()
    where = f"rank {world.Get_rank()} of {world.Get_size()}: " if world is not None and world.Get_size() > 1 else ""
    click.echo(f"firecaffe: {where}error: {message}", err=True)
    sys.stderr.flush()
    if where:
        from .watchdog import disarm
        disarm()            # this rank has said why it ends: its last-words watcher stays quiet
        world.Abort(1)
    sys.exit(1)
