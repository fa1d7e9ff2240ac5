"""`firecaffe compress` and `firecaffe decompress`: Deep Compression (Han, Mao, Dally, ICLR 2016).

    firecaffe compress SOLVER.prototxt --weights W.caffemodel --out W.fcz --density 'conv*:0.35,ip*:0.1'
    firecaffe compress deploy.prototxt --weights W.caffemodel --out W.fcz --quality 1.2 --report
    mpirun -n 4 firecaffe compress SOLVER.prototxt --weights W.caffemodel --out W.fcz --comm tree
    firecaffe decompress W.fcz --out W.caffemodel

With a solver, pruning and quantization are followed by retraining on the solver's data (pruned
weights held at zero, shared weights moved together), data-parallel under mpirun like `train`,
and the test net's accuracy is reported after each stage. With a bare net, the stages run on
the weights alone. docs/compression.md has the format and measured results.
"""
import os

import click

from ..errors import FirecaffeError
from .options import CPU_OPTION, GLOBAL_BATCH_OPTION, GPU_OPTION, PS_SERVERS_OPTION, choose_device, comm_option

STAGES = ("prune", "quantize")


@click.command("compress")
@click.argument("target", type=click.Path(exists=True, dir_okay=False))
@click.option("--weights", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Trained weights (.caffemodel, .caffemodel.h5 or .fcz); never modified.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The .fcz file to write.")
@click.option("--density", help="Weights kept per layer, e.g. 'conv*:0.35,ip*:0.1' or 0.33 for all.")
@click.option("--quality", help="Prune below QUALITY x the layer's weights' std (the paper's rule), "
              "e.g. 'fc*:1.5' or 1.0 for all (layers given neither are not pruned).")
@click.option("--bits", help="Shared-weight bits per layer, 1-16 (default: conv 8, fc 5), e.g. 'fc8:6'.")
@click.option("--index-bits", help="Relative index width per layer, 1-16 (default: the smallest file).")
@click.option("--stages", default="prune,quantize", show_default=True,
              help="Lossy stages to run (prune, quantize); Huffman coding always runs.")
@click.option("--schedule", type=click.IntRange(min=1), default=1, show_default=True,
              help="Prune in N steps to the target density, retraining after each.")
@click.option("--prune-iters", type=click.IntRange(min=0), help="Retraining iterations after each pruning "
              "step (default with a solver: its max_iter / (schedule + 1); none with a bare net).")
@click.option("--quantize-iters", type=click.IntRange(min=0), help="Retraining iterations of the shared "
              "weights (default with a solver: as --prune-iters).")
@click.option("--base-lr", type=float, help="Retraining learning rate (default: the solver's base_lr / 10).")
@click.option("--report", is_flag=True, help="Print the per-layer table (params, density, bits, bytes after "
              "each stage, ratio) and totals.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--sensitivity", type=click.Path(dir_okay=False), help="Draw test accuracy against density, "
              "one curve per layer (no retraining), to this PNG.")
@comm_option()
@GLOBAL_BATCH_OPTION
@PS_SERVERS_OPTION
@CPU_OPTION
@GPU_OPTION
def compress(target, weights, out, density, quality, bits, index_bits, stages, schedule, prune_iters,
             quantize_iters, base_lr, report, as_json, sensitivity, comm, global_batch, ps_servers, cpu, gpu):
    """Prune, quantize and Huffman-code a trained net's weights into a .fcz file."""
    from ..compress import pipeline, report as reports, sensitivity as sens
    from ..compress.spec import Plan
    from ..core.log import LOGGER
    chosen = [s.strip() for s in stages.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in STAGES]
    if unknown:
        raise click.BadParameter(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}",
                                 param_hint="'--stages'")
    if os.path.abspath(out) == os.path.abspath(weights):
        raise FirecaffeError(f"--out {out} is the input weights file; the input is never overwritten")
    param, solver_path = _solver_param(target)
    net_kinds = _net_kinds(param, solver_path, target)
    original = pipeline.Weights.read(weights)
    plan = Plan(original.kinds(net_kinds), density, quality, bits, index_bits)
    if "prune" in chosen and not (plan.density or plan.quality):
        raise FirecaffeError("--stages prune needs --density or --quality (which layers, how far)")
    default_iters = (param.max_iter // (schedule + 1)) if param is not None else 0
    prune_iters = default_iters if prune_iters is None else prune_iters
    quantize_iters = default_iters if quantize_iters is None else quantize_iters
    retraining = param is not None and (prune_iters or quantize_iters or sensitivity)
    if param is None and (prune_iters or quantize_iters):
        raise FirecaffeError(f"{target} is a net, not a solver: retraining (--prune-iters, --quantize-iters) "
                             "needs a solver with training data")
    if sensitivity:
        if param is None or not (param.test_net or param.test_net_param or param.test_iter):
            raise FirecaffeError(f"--sensitivity needs the accuracy of a test net: {target} has none "
                                 "(give a solver with test_iter and a TEST phase)")
        sens.check_can_draw(sensitivity)
    solver = _solver(param, solver_path, dict(comm=comm, global_batch=global_batch, ps_servers=ps_servers),
                     cpu, gpu, base_lr) if retraining else None
    if solver is not None:
        missing = [name for name in plan.layers if name not in solver.net.layer_dict]
        if missing:
            raise FirecaffeError(f"layer(s) {', '.join(missing)} of {weights} are not in the solver's train net "
                                 f"'{solver.net.name}': weights from another net?")
    speak = solver is None or solver.is_root
    progress = pipeline.Progress(speak)
    work = original                 # this process's arrays: the file is never written
    scores = {}

    def score(label):
        if solver is not None and solver.test_nets:
            work.into(solver.net)
            scores[label] = pipeline.accuracy(solver)
            return f"; test accuracy {scores[label]:.4f}"
        return ""

    progress("start", f"{original.parameters:,} parameters, {len(plan.layers)} layers to compress{score('input')}")
    if sensitivity and solver is not None:
        curves = sens.measure(work, plan.layers, lambda w: (w.into(solver.net), pipeline.accuracy(solver))[1])
        if speak:
            sens.draw(curves, sensitivity)
        progress("sensitivity", f"{len(curves)} curves drawn to {sensitivity}")
    masks = None
    if "prune" in chosen:
        for step in range(1, schedule + 1):
            masks = pipeline.prune_step(work, plan, step / schedule)
            progress("prune", f"step {step}/{schedule}: {pipeline.density_line(work, plan)}{score(f'prune {step}')}")
            if solver is not None and prune_iters:
                work = pipeline.retrain_step(solver, work, prune_iters, masks=masks)
                progress("retrain", f"{prune_iters} iterations with the masks{score(f'retrain {step}')}")
    if "quantize" in chosen:
        shared = pipeline.quantize_step(work, plan)
        progress("quantize", f"k-means codebooks ({_bits_line(plan)}){score('quantize')}")
        if solver is not None and quantize_iters:
            masks = {name: work.weight(name) != 0 for name in shared}
            work = pipeline.retrain_step(solver, work, quantize_iters, masks=masks, shared=shared)
            progress("retrain", f"{quantize_iters} iterations of the shared weights{score('retrain shared')}")
    if solver is not None and solver.parallel is not None:
        solver.parallel.close()
    if not speak:
        return
    from .. import fcz
    costs = fcz.write(out, work.name, pipeline.encode_layers(work, plan, bits="quantize" in chosen))
    summary = reports.summarize(costs, os.path.getsize(out), set(plan.layers))
    total = summary["total"]
    progress("huffman", f"wrote {out}: {total['stored']:,} bytes, {total['ratio']:.1f}x smaller than float32 "
                        f"({total['dense']:,} bytes)")
    if report:
        click.echo(reports.table(summary))
    if as_json:
        click.echo(reports.to_json(summary, accuracy=scores, weights=weights, out=out))
    LOGGER.debug("compress done")


def _bits_line(plan):
    widths = sorted(set(plan.bits.values()))
    return ", ".join(f"{b} bits: {sum(1 for v in plan.bits.values() if v == b)} layer(s)" for b in widths)


def _solver_param(target):
    """(SolverParameter, path) for a solver file, (None, None) for a net file."""
    from .train import load_solver_param
    param, path = load_solver_param(target, None)
    return (param, path) if path is not None else (None, None)


def _net_kinds(param, solver_path, target):
    """{layer name: type} of the net (the train net of a solver)."""
    from ..proto import io
    from ..solvers import sources
    if param is None:
        net = io.read_net(target)
    else:
        source = sources.train_source(param, solver_path)
        net = source if not isinstance(source, str) else io.read_net(source)
    return {layer.name: layer.type for layer in net.layer}


def _solver(param, path, flags, cpu, gpu, base_lr):
    from ..core.log import setup as setup_logging
    from ..core.options import RunOptions
    from ..run import mpi_util
    from ..run.parallel import make_parallel
    from ..solvers import Solver
    world = mpi_util.world()
    size = world.Get_size() if world is not None else 1
    if size > 1:
        mpi_util.abort_on_error(click.get_current_context().find_root().obj.failure_context)
    setup_logging(world.Get_rank() if world is not None else 0, size)
    options = RunOptions.build(show_progress=False, **flags)
    parallel = make_parallel(world if size > 1 else None, options)
    choose_device(cpu, gpu, param, local_rank=parallel.local_rank if parallel is not None else 0)
    param.base_lr = base_lr if base_lr is not None else param.base_lr / 10
    param.snapshot = 0
    param.snapshot_after_train = False
    param.test_interval = 0
    return Solver(param, path=path, parallel=parallel, options=options)


@click.command("decompress")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The .caffemodel to write.")
def decompress(source, out):
    """Write a .fcz file's weights as a float32 .caffemodel (Caffe's binary NetParameter)."""
    from .. import fcz
    from ..proto import caffe_pb2, io
    name, layers = fcz.read(source)
    param = caffe_pb2.NetParameter(name=name)
    for layer_name, kind, arrays in layers:
        layer = param.layer.add(name=layer_name, type=kind)
        for array in arrays:
            layer.blobs.add().CopyFrom(io.array_to_blob(array))
    io.write_caffemodel(param, out)
    click.echo(f"{source} -> {out}: {len(layers)} layers, "
               f"{sum(a.size for _, _, arrays in layers for a in arrays):,} parameters")
