"""`firecaffe analyze`'s scaling-prediction options (--workers, --profile, ...) and
how they turn into firecaffe.insight.predict's prediction of a report."""
import functools

import click

from ..insight.predict import DEFAULT_BANDWIDTH, DEFAULT_LATENCY, add_prediction, make_profile, parse_workers


def prediction_options(command):
    """Click options of ``analyze`` for scaling predictions; they arrive as keyword arguments."""
    options = [
        click.option("--workers", metavar="P[,P...]", help="Predict communication and speedup at these "
                     "worker counts."),
        click.option("--profile", "profile_path", type=click.Path(dir_okay=False),
                     help="Machine profile from `firecaffe bench fit --out`."),
        click.option("--bandwidth", metavar="RATE", help=f"Link bandwidth, e.g. 10GB/s or 100Gb/s "
                     f"(default {DEFAULT_BANDWIDTH} without --profile)."),
        click.option("--latency", metavar="TIME", help=f"Per-message latency, e.g. 2us "
                     f"(default {DEFAULT_LATENCY} without --profile)."),
        click.option("--compute-ms", type=float, help="Milliseconds of one iteration at the global batch "
                     "on 1 worker: adds strong-scaling speedup and efficiency."),
        click.option("--fixed-ms", type=float, help="The part of --compute-ms that does not shrink with "
                     "the batch (each worker pays it in full): time 1 worker at two batch sizes b < B, "
                     "fixed = (B t(b) - b t(B)) / (B - b)."),
        click.option("--compute-cores", type=click.IntRange(min=1), help="The workers share this many "
                     "processors (GPUs, or cores on a CPU job): compute speeds up at most this many times."),
        click.option("--ppn", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Ranks per node: hier reduces inside a node and runs among P / ppn node leaders."),
        click.option("--ps-servers", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Parameter-server ranks for the ps prediction."),
        click.option("--compress", default="none", show_default=True, metavar="CODEC",
                     help="Predict with gradients compressed on the wire: none, fp16, bf16, int8, "
                          "powersgd[:RANK] (the profile needs that codec's delta: bench fit)."),
    ]
    return functools.reduce(lambda cmd, option: option(cmd), reversed(options), command)


def apply_prediction(report, workers=None, profile_path=None, bandwidth=None, latency=None,
                     compute_ms=None, ps_servers=1, ppn=1, compute_cores=None, compress="none",
                     fixed_ms=None):
    """Add the prediction (insight.predict) to ``report`` when ``--workers`` was given;
    True if it did. The other options without ``--workers`` are an error (they would do nothing)."""
    if workers is None:
        given = [name for name, value in (("--profile", profile_path), ("--bandwidth", bandwidth),
                                          ("--latency", latency), ("--compute-ms", compute_ms),
                                          ("--compute-cores", compute_cores), ("--fixed-ms", fixed_ms is not None),
                                          ("--ppn", ppn != 1),
                                          ("--compress", compress != "none")) if value]
        if given:
            raise click.UsageError(f"{', '.join(given)} only make sense with --workers P[,P...]")
        return False
    profile = make_profile(profile_path, bandwidth, latency)
    add_prediction(report, parse_workers(workers), profile, compute_ms, servers=ps_servers, ranks_per_node=ppn,
                   compute_cores=compute_cores, compress=compress, fixed_ms=fixed_ms)
    return True
