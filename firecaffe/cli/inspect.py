"""`firecaffe test`, `firecaffe time` and `firecaffe analyze`: score, time and describe a net."""
import json

import click

from ..core import backend
from ..core.log import LOGGER, setup as setup_logging
from ..insight.predict import format_prediction
from .options import CPU_OPTION, GPU_OPTION, choose_device
from .prediction import apply_prediction, prediction_options


@click.command()
@click.option("--model", required=True, type=click.Path(), help="Net prototxt (TEST phase).")
@click.option("--weights", type=click.Path(), help=".caffemodel or .caffemodel.h5 to test.")
@click.option("--iterations", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--phase", type=click.Choice(["TRAIN", "TEST"], case_sensitive=False), default="TEST")
@CPU_OPTION
@GPU_OPTION
def test(model, weights, iterations, phase, cpu, gpu):
    """Score a model, printing every output of every batch and the means (as `caffe test`)."""
    from ..engine.net import Net
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


@click.command("time")
@click.option("--model", required=True, type=click.Path(), help="Net prototxt.")
@click.option("--iterations", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--phase", type=click.Choice(["TRAIN", "TEST"], case_sensitive=False), default="TRAIN")
@click.option("--weights", type=click.Path(), help="Optional weights.")
@CPU_OPTION
@GPU_OPTION
def time_cmd(model, iterations, phase, weights, cpu, gpu):
    """Time forward and backward of every layer (as `caffe time`)."""
    from ..engine.net import Net
    from ..insight.timing import time_net
    setup_logging()
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
