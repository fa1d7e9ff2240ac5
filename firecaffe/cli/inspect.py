"""`firecaffe test`, `firecaffe time` and `firecaffe analyze`: score, time and describe a net."""
import json

import click
from ..core import backend
from ..core.log import LOGGER, setup as setup_logging
from ..insight.predict import format_prediction
from .options import CPU_OPTION, GPU_OPTION, choose_device, phase_option
from .prediction import apply_prediction, prediction_options


@click.command()
@click.option("--model", required=True, type=click.Path(), help="Net prototxt (TEST phase).")
@click.option("--weights", type=click.Path(), help=".caffemodel, .caffemodel.h5 or .fcz (firecaffe compress) to test.")
@click.option("--iterations", type=click.IntRange(min=1),
              help="Batches of the net's batch_size to score, spread over the ranks, the source "
                   "wrapping around as in Caffe [default: one pass over the data source when its size "
                   "is known, each sample once, else 50].")
@phase_option("TEST", "The phase to build the net in.")
@CPU_OPTION
@GPU_OPTION
def test(model, weights, iterations, phase, cpu, gpu):
    """Score a model, printing every output of every batch and the means (as `caffe test`).

    Under mpirun the batches are spread over the ranks and rank 0 prints what one
    process prints: the same batches, the same outputs and the same means.
    """
    from ..engine.net import Net
    from ..insight import scoring
    from ..run import mpi_util
    world = mpi_util.world()
    rank, size = (world.Get_rank(), world.Get_size()) if world is not None else (0, 1)
    if size > 1:
        mpi_util.abort_on_error()
    setup_logging(rank, size)
    choose_device(cpu, gpu)
    net = Net(model, weights=weights, phase=phase.upper(), shard=(rank, size))
    if not weights:
        LOGGER.warning("no --weights given: testing the net's initial (random) weights")
    source, _ = scoring.source_of(net)
    samples = source.cursor.num_samples if source is not None else None
    batch = source.cursor.batch_size if source is not None else None
    plan = scoring.Plan(samples, batch, iterations)
    if iterations is None and samples:
        LOGGER.info(f"Testing one pass over the {samples} samples of the source: {plan.batches} batch(es) of "
                    f"{batch}" + (f" (the last of {plan.last})" if plan.last != batch else "")
                    + (f", spread over {size} ranks" if size > 1 else ""))
    records = scoring.score(net, plan, rank, size)
    if size > 1:
        gathered = world.gather(records, root=0)            # a few numbers per batch, for printing
        if rank != 0:
            return
        records = sorted((r for part in gathered for r in part), key=lambda r: r[0])
    weights_of = net.loss_weights_by_blob()
    for k, _, _, outputs in records:
        for name, values in outputs.items():
            for v in values:
                LOGGER.info(f"Batch {k}, {name} = {v:.6g}")
    tested, loss, means = scoring.means(records)
    if samples:
        wrapped = f" (the source holds {samples}; the stream wrapped around)" if tested > samples else ""
        LOGGER.info(f"Tested {tested} samples in {plan.batches} batch(es)"
                    f"{' on %d ranks' % size if size > 1 else ''}{wrapped}")
    LOGGER.info(f"Loss: {loss:.6g}")
    for name, values in means.items():
        for v in values:
            w = weights_of.get(name)
            extra = f" (* {w:g} = {w * v:.6g} loss)" if w else ""
            LOGGER.info(f"{name} = {v:.6g}{extra}")


@click.command("time")
@click.option("--model", required=True, type=click.Path(), help="Net prototxt.")
@click.option("--iterations", default=50, show_default=True, type=click.IntRange(min=1))
@phase_option("TRAIN", "The phase to build the net in (as caffe time).")
@click.option("--weights", type=click.Path(), help="Optional weights.")
@CPU_OPTION
@GPU_OPTION
def time_cmd(model, iterations, phase, weights, cpu, gpu):
    """Time forward and backward of every layer (as `caffe time`). Under mpirun, rank 0 times alone."""
    from ..engine.net import Net
    from ..insight.timing import time_net
    from ..run import mpi_util
    world = mpi_util.world()
    rank, size = (world.Get_rank(), world.Get_size()) if world is not None else (0, 1)
    setup_logging(rank, size)
    if rank != 0:
        return              # one process timed alone: other ranks would share its cores and skew it
    if size > 1:
        LOGGER.info(f"firecaffe time measures one process: rank 0 times the net, the other {size - 1} "
                    "rank(s) end at once (for communication, see firecaffe bench comm)")
    choose_device(cpu, gpu)
    net = Net(model, weights=weights, phase=phase.upper())
    time_net(net, iterations)


@click.command()
@click.argument("model", type=click.Path())
@phase_option("TEST", "The phase to build the net in.")
@click.option("--stage", "stages", multiple=True, help="A stage of the net state (repeatable), as Net(stages=...).")
@click.option("--level", default=0, show_default=True, type=int, help="The net state's level.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@prediction_options
def analyze(model, phase, stages, level, as_json, **prediction):
    """Per-layer output shapes, parameters, bytes and forward FLOPs of a net; with
    --workers, the bytes each strategy moves and its predicted time and speedup."""
    from ..insight.analysis import analyze as analyze_net, format_table
    from ..engine.net import Net
    setup_logging(level="WARNING")
    backend.set_mode_cpu()
    report = analyze_net(Net(model, phase=phase.upper(), level=level, stages=stages, shapes_only=True))
    predicted = apply_prediction(report, **prediction)
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(format_table(report))
    if predicted:
        click.echo("\n" + format_prediction(report))
