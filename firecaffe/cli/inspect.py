"""`firecaffe test`, `firecaffe time` and `firecaffe analyze`: score, time and describe a net."""
import json

import click
import numpy as np

from ..core import backend
from ..core.log import LOGGER, setup as setup_logging
from ..insight.predict import format_prediction
from .options import CPU_OPTION, GPU_OPTION, choose_device
from .prediction import apply_prediction, prediction_options


@click.command()
@click.option("--model", required=True, type=click.Path(), help="Net prototxt (TEST phase).")
@click.option("--weights", type=click.Path(), help=".caffemodel or .caffemodel.h5 to test.")
@click.option("--iterations", type=click.IntRange(min=1),
              help="Batches (per rank) to score [default: one pass over the data source when its size "
                   "is known, else 50].")
@click.option("--phase", type=click.Choice(["TRAIN", "TEST"], case_sensitive=False), default="TEST")
@CPU_OPTION
@GPU_OPTION
def test(model, weights, iterations, phase, cpu, gpu):
    """Score a model, printing every output of every batch and the means (as `caffe test`).

    Under mpirun the batches are spread over the ranks (each reads its slice of
    every global batch) and the outputs are averaged over all of them; rank 0 speaks.
    """
    from ..engine.net import Net
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
    samples, global_batch = _source_size(net)
    if iterations is None:
        iterations = -(-samples // global_batch) if samples else 50
        if samples:
            LOGGER.info(f"Testing one pass over the {samples} samples of the source: {iterations} batch(es) of "
                        f"{global_batch}" + (f" ({global_batch // size} on each of {size} ranks)" if size > 1 else ""))
    totals, loss = {}, 0.0
    weights_of = net.loss_weights_by_blob()
    for i in range(iterations):
        loss += net.forward_range()
        for name in net.outputs:
            values = backend.to_host(net.blobs[name].data).ravel()
            for k, v in enumerate(values):
                LOGGER.info(f"Batch {i}, {name} = {float(v):.6g}")
            totals[name] = totals.get(name, 0) + values.astype(float)
    names = list(totals)
    flat = np.concatenate([[loss]] + [np.atleast_1d(totals[n]) for n in names])
    if size > 1:
        from mpi4py import MPI
        world.Allreduce(MPI.IN_PLACE, flat)
    count = iterations * size
    loss, offset = flat[0], 1
    if global_batch:
        tested = iterations * global_batch
        extra = f" (the source holds {samples}; the last batch wraps around)" if samples and tested != samples else ""
        LOGGER.info(f"Tested {tested} samples in {iterations} batch(es){' on %d ranks' % size if size > 1 else ''}"
                    f"{extra}")
    LOGGER.info(f"Loss: {loss / count:.6g}")
    for name in names:
        width = np.atleast_1d(totals[name]).size
        for v in flat[offset:offset + width] / count:
            w = weights_of.get(name)
            extra = f" (* {w:g} = {w * v:.6g} loss)" if w else ""
            LOGGER.info(f"{name} = {v:.6g}{extra}")
        offset += width


def _source_size(net):
    """(samples in the first data layer's source or None, its global batch or None)."""
    for layer in net.layers:
        cursor = getattr(layer, "cursor", None)
        if cursor is not None:
            return cursor.num_samples, cursor.global_batch
    return None, None


@click.command("time")
@click.option("--model", required=True, type=click.Path(), help="Net prototxt.")
@click.option("--iterations", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--phase", type=click.Choice(["TRAIN", "TEST"], case_sensitive=False), default="TRAIN")
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
@click.option("--phase", type=click.Choice(["TRAIN", "TEST"], case_sensitive=False), default="TEST",
              show_default=True)
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
