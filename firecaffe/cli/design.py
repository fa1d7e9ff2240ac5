"""`firecaffe design squeezenet`: write SqueezeNet-family nets from the paper's
metaparameters (firecaffe.insight.design), one net or a sweep, and print their
size and compute as the engine counts them."""
import itertools
import math
import os
from dataclasses import replace

import click

from ..insight.design import SqueezeNetSpec, squeezenet_files, write_files, write_squeezenet

SWEEPABLE = {"sr": float, "pct_3x3": float, "base_e": int, "incr_e": int, "freq": int, "modules": int}


def parse_sweep(text):
    """'sr=0.125:1.0:0.125' (start:stop:step, stop included) or 'pct_3x3=0.01,0.5,0.99'."""
    name, _, values = text.partition("=")
    name = name.strip().lower().replace("-", "_")
    if name not in SWEEPABLE or not values:
        raise click.UsageError(f"--sweep {text!r}: write NAME=START:STOP:STEP or NAME=V1,V2,... "
                               f"with NAME one of {', '.join(SWEEPABLE)}")
    kind = SWEEPABLE[name]
    try:
        if ":" in values:
            start, stop, step = (float(v) for v in values.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            count = int(math.floor((stop - start) / step + 1e-9)) + 1
            out = [round(start + k * step, 10) for k in range(count)]
        else:
            out = [float(v) for v in values.split(",")]
    except ValueError:
        raise click.UsageError(f"--sweep {text!r}: values must be numbers, START <= STOP and STEP > 0") from None
    return name, [kind(v) if kind is float else int(round(v)) for v in out]


@click.group()
def design():
    """Write nets from design-space metaparameters."""


@design.command()
@click.option("--out", type=click.Path(file_okay=False), default="squeezenet_design", show_default=True,
              help="Folder for train_val/deploy/solver prototxt (one subfolder per point with --sweep).")
@click.option("--base-e", type=int, default=128, show_default=True, help="Expand filters of the first module.")
@click.option("--incr-e", type=int, default=128, show_default=True, help="Expand filters added every FREQ modules.")
@click.option("--freq", type=int, default=2, show_default=True)
@click.option("--pct-3x3", "pct_3x3", type=float, default=0.5, show_default=True,
              help="Share of expand filters that are 3x3.")
@click.option("--sr", type=float, default=0.125, show_default=True, help="Squeeze ratio.")
@click.option("--modules", type=int, default=8, show_default=True, help="Number of Fire modules.")
@click.option("--pool-after", default="4,8", show_default=True,
              help="Fire modules followed by max pooling (fire2 is the first).")
@click.option("--conv1", default="96,7,2,0", show_default=True, help="conv1 filters,kernel,stride,pad.")
@click.option("--bypass", is_flag=True, help="Simple bypass around modules that keep their width.")
@click.option("--classes", "num_classes", type=int, default=1000, show_default=True)
@click.option("--input-size", type=int, default=227, show_default=True)
@click.option("--dataset", type=click.Choice(["imagenet", "cifar10"]), default="imagenet", show_default=True)
@click.option("--solver-mode", type=click.Choice(["cpu", "gpu"], case_sensitive=False),
              help="Write solver_mode into solver.prototxt (default: leave it out, so that "
                   "`firecaffe train` runs on the CPU unless given --gpu).")
@click.option("--sweep", multiple=True, metavar="NAME=START:STOP:STEP",
              help="Write a family over one metaparameter (repeat for a grid); NAME=V1,V2,... works too.")
def squeezenet(out, sweep, pool_after, conv1, solver_mode, **values):
    """Write a SqueezeNet-family net (defaults: SqueezeNet v1.0) and report its size and FLOPs."""
    try:
        values["pool_after"] = tuple(int(v) for v in pool_after.split(",") if v.strip())
        values["conv1"] = tuple(int(v) for v in conv1.split(","))
    except ValueError:
        raise click.UsageError("--pool-after and --conv1 take comma-separated integers") from None
    if len(values["conv1"]) != 4:
        raise click.UsageError("--conv1 takes four integers: filters,kernel,stride,pad")
    base = SqueezeNetSpec(**values)
    if not sweep:
        info = write_squeezenet(base, out, solver_mode)      # builds both nets before writing
        click.echo(f"{'module':8s} {'squeeze':>8s} {'1x1':>6s} {'3x3':>6s}")
        for name, s, e1, e3 in info["schedule"]:
            click.echo(f"{name:8s} {s:8d} {e1:6d} {e3:6d}")
        _report(info, out)
        return
    axes = [parse_sweep(s) for s in sweep]
    points = [dict(zip([n for n, _ in axes], combo)) for combo in itertools.product(*[v for _, v in axes])]
    designs = []
    for point in points:                             # build and measure all before writing any
        folder = os.path.join(out, "_".join(f"{n}_{v:g}" for n, v in point.items()))
        spec = replace(base, name=f"SqueezeNet_{os.path.basename(folder)}", **point)
        designs.append((point, folder, *squeezenet_files(spec, folder, solver_mode)))
    header = "  ".join(f"{n:>8s}" for n, _ in axes)
    click.echo(f"{header}  {'params':>11s} {'MiB':>7s} {'paper MB':>8s} {'GFLOPs':>7s}  folder")
    for point, folder, texts, info in designs:
        write_files(folder, texts)
        cells = "  ".join(f"{v:8g}" for v in point.values())
        click.echo(f"{cells}  {info['params']:11,d} {info['mb']:7.2f} {info['paper_mb']:8g} "
                   f"{info['flops'] / 1e9:7.3f}  {folder}")


def _report(info, out):
    click.echo(f"parameters: {info['params']:,d}\n"
               f"model size: {info['mb']:.2f} MiB float32 (the paper would print {info['paper_mb']:g}MB)\n"
               f"compute:    {info['macs'] / 1e9:.3f} G multiply-adds, {info['flops'] / 1e9:.3f} GFLOPs per image\n"
               f"wrote {out}/train_val.prototxt, deploy.prototxt, solver.prototxt")
