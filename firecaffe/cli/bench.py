"""``firecaffe bench``: comm (time the reduction strategies under MPI), fit (the cost model), report.

Attached to the main command with ``cli.add_command(bench)``; also runs alone:
``mpiexec -n 8 python -m firecaffe.cli.bench comm --sizes 4K,16M``.
"""
import json

import click

from ..errors import FirecaffeError
from .options import COMPRESS_OPTION, INTER_OPTION, comm_option, phase_option


def _split(text):
    return [part.strip() for part in text.split(",") if part.strip()]


def _parse_sizes(text):
    from ..insight.predict import parse_size
    sizes = [parse_size(part) for part in _split(text)]
    if not sizes:
        raise click.UsageError("--sizes needs at least one size, e.g. 4K,1M,16M")
    return sizes


def _parse_ranks(text):
    if text is None:
        return None
    try:
        ranks = [int(part) for part in _split(text)]
    except ValueError:
        raise click.UsageError(f"--ranks {text!r}: give rank counts as integers separated by commas, "
                               "e.g. 2,4,8") from None
    if not ranks or any(r < 1 for r in ranks):
        raise click.UsageError(f"--ranks {text!r}: rank counts must be positive integers")
    return ranks


def _net_gradient(world, path, phase):
    """The gradient bytes of ``path`` (its parameter bytes) and its parameters' shapes (PowerSGD
    compresses each weight matrix), read on rank 0 and shared."""
    answer = None
    if world.Get_rank() == 0:
        try:
            from ..core import backend
            from ..engine.net import Net
            from ..insight.analysis import analyze
            from ..insight.bench.codecs import shapes_of
            backend.set_mode_cpu()
            report = analyze(Net(path, phase=phase, shapes_only=True))
            answer = (report["param_bytes"], shapes_of(report["layers"]))
        except FirecaffeError as exc:
            answer = f"--net {path}: {exc}"
    answer = world.bcast(answer, root=0)  # setup metadata, not the gradient path
    if isinstance(answer, str):
        raise FirecaffeError(answer)
    if not answer[0]:
        raise FirecaffeError(f"--net {path} has no learnable parameters: nothing to reduce")
    return answer


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def bench():
    """Measure gradient reduction and fit the alpha-beta-gamma cost model."""


@bench.command()
@comm_option(many=True)
@click.option("--sizes", default="4K,1M,16M,64M", show_default=True,
              help="Message sizes in bytes (K, M, G are powers of 1024).")
@click.option("--net", type=click.Path(dir_okay=False), help="Use this net's gradient size (its parameter "
              "bytes) instead of --sizes.")
@phase_option("TEST", "Phase to build --net in.")
@click.option("--ranks", "ranks_text", metavar="R[,R...]", help="Measure on sub-communicators of these "
              "many ranks (ps: workers) instead of the whole job.")
@click.option("--sweep", is_flag=True, help="Measure on 2, 4, 8, ... ranks and the whole job.")
@click.option("--repeats", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=2, show_default=True)
@click.option("--ps-servers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Ranks that act as parameter servers for ps (the job's last ranks).")
@INTER_OPTION
@COMPRESS_OPTION
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the records here.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write a PNG of time against ranks.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
def comm(comms, sizes, net, phase, ranks_text, sweep, repeats, warmup, ps_servers, inter, compress, json_path,
         plot_path, quiet):
    """Time one gradient allreduce per strategy, size and rank count (run under mpirun)."""
    names = comms
    ranks = _parse_ranks(ranks_text)
    if ranks and sweep:
        raise click.UsageError("give --ranks or --sweep, not both")
    byte_sizes = None if net else _parse_sizes(sizes)
    from mpi4py import MPI

    from ..insight.bench import comm as bench_comm
    world = MPI.COMM_WORLD
    shapes = None
    if net:
        gradient_bytes, shapes = _net_gradient(world, net, phase.upper())
        byte_sizes = [gradient_bytes]
    rank0 = world.Get_rank() == 0

    def progress(name, nbytes, r):
        if not quiet:
            click.echo(f"  {name} {bench_comm.human_bytes(nbytes)} on {r} rank(s) ...", err=True)

    try:
        from ..core.options import RunOptions
        records = bench_comm.run(world, names, byte_sizes, ranks, sweep, repeats, warmup, ps_servers,
                                 net=net, progress=progress, inter=inter, wait=RunOptions.build().wait,
                                 compress=compress, shapes=shapes)
    except FirecaffeError as exc:
        if world.Get_size() > 1 or "needs at least" not in str(exc):
            raise
        raise FirecaffeError(f"{exc}. bench comm times communication between ranks and this is one process: "
                             f"run it under mpirun, e.g. mpirun -n 4 firecaffe bench comm --comm {comms}") from None
    if not rank0:
        return
    click.echo(bench_comm.format_table(records))
    if json_path:
        with open(json_path, "w") as handle:
            json.dump(records, handle, indent=1)
    if plot_path:
        from ..insight.bench.plot import plot_time_vs_ranks
        plot_time_vs_ranks(records, plot_path, title=f"allreduce on {world.Get_size()} ranks")


@bench.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option("--per-strategy", is_flag=True, help="Also fit each strategy's points on their own.")
@click.option("--min-ranks", type=click.IntRange(min=1), default=4, show_default=True,
              help="Summarize the error over points with at least this many ranks.")
@click.option("--min-bytes", default="0", show_default=True, help="Fit only messages of at least this size.")
@click.option("--cores", type=click.IntRange(min=0), help="The ranks shared this many cores per node: where "
              "processes outnumber them, use the contended model (firecaffe.insight.bench.model.busiest_rank). "
              "Default: this machine's cores if RESULTS were measured on it, else 0 (off).")
@click.option("--compute-cores", type=click.IntRange(min=1), help="The ranks of compressed RESULTS shared "
              "this many cores for encoding and decoding (emulated nodes on one machine): the codec's delta "
              "is fitted as each rank's own CPU time (predict the same way with analyze --compute-cores).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the fitted profile (JSON) here.")
@click.option("--force", is_flag=True, help="Write the profile even if the fit is degenerate (a zero "
              "coefficient, infinite bandwidth, or errors over 30%).")
def fit(results, per_strategy, min_ranks, min_bytes, cores, compute_cores, out, force):
    """Fit alpha, beta, gamma to RESULTS (JSON files or sweep folders) and print each point's error.

    One profile is fitted to all strategies together (non-negative least squares
    on relative error), since they run on the same links; --per-strategy adds
    each strategy's own fit for comparison.
    """
    from pathlib import Path

    from ..comm import names
    from ..insight.bench import codecs, model, sanity
    from ..insight.bench.report import _median, codec_table, error_table, load_folder, load_records, summary_by_comm
    records = [r for path in results
               for r in (load_folder(path) if Path(path).is_dir() else load_records(path))]
    from ..insight.predict import parse_size
    smallest = parse_size(min_bytes) if min_bytes not in ("0", 0) else 0
    records = [r for r in records if r["bytes"] >= smallest]
    if cores is None:
        cores = model.default_cores(records)
        if cores:
            click.echo(f"measured on this machine: contended model for more than {cores} processes "
                       "(--cores 0 turns it off)")
    profile = dict(model.fit(records, cores=cores), min_bytes=smallest)
    click.echo(_describe(profile, "all strategies"))
    click.echo(error_table(records, profile))
    rows = [row for row in model.errors(records, profile) if row[0]["ranks"] >= min_ranks]
    if rows:
        worst = max(abs(error) for _, _, error in rows)
        click.echo(f"\nlargest error at >= {min_ranks} ranks: {worst:.0%}")
    if per_strategy:
        summary = {name: (errs, None) for name, errs in summary_by_comm(rows).items()}
        for name in sorted({r["comm"] for r in records if r["comm"] in names()}):
            subset = [r for r in records if r["comm"] == name]
            try:
                own = model.fit(subset, cores=cores)
            except FirecaffeError as exc:
                click.echo(f"\n{name}: {exc}")
                continue
            click.echo("\n" + _describe(own, name))
            click.echo(error_table(subset, own))
            own_rows = [row for row in model.errors(subset, own) if row[0]["ranks"] >= min_ranks]
            if name in summary:
                summary[name] = (summary[name][0], summary_by_comm(own_rows).get(name))
        click.echo(f"\nabs error at >= {min_ranks} ranks, median / max: shared fit | own fit")
        for name, (shared, own_errs) in summary.items():
            own_text = f"{_median(own_errs):.0%} / {max(own_errs):.0%}" if own_errs else "-"
            click.echo(f"  {name:5s} {_median(shared):.0%} / {max(shared):.0%} | {own_text}")
    problems = sanity.problems(profile, model.errors(records, profile))
    for problem in problems:
        click.echo(f"warning: degenerate fit: {problem}", err=True)
    if out and problems and not force:
        raise FirecaffeError(f"not writing the profile to {out}: the fit is degenerate (see the warnings); "
                             "measure more sizes and rank counts, or --force to write it anyway")
    deltas = codecs.fit(records, profile, compute_cores)
    if deltas:
        profile["delta_s_per_byte"] = deltas
        click.echo("\n" + codec_table(records, profile, min_ranks, compute_cores))
    machines = {r.get("machine") for r in records}
    if out:
        saved = dict(profile, fitted_from=[str(p) for p in results], model="firecaffe.insight.bench.model", version=1)
        if len(machines) == 1 and None not in machines:
            saved["machine"] = machines.pop()        # --comm auto refuses a profile of another machine kind
        with open(out, "w") as handle:
            json.dump(saved, handle, indent=1)
        click.echo(f"\nprofile written to {out}")


def _describe(profile, what):
    from ..insight.predict import rate
    beta, gamma = profile["beta_s_per_byte"], profile["gamma_s_per_byte"]
    return (f"fit over {what} ({profile['points']} points): alpha = {profile['alpha_s'] * 1e6:.3g} us, "
            f"beta = {beta * 1e12:.4g} ps/byte ({rate(beta)}), "
            f"gamma = {gamma * 1e12:.4g} ps/byte ({rate(gamma) if gamma else 'reduction free'}); "
            f"GB/s = 10^9 bytes/s")


@bench.command()
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), help="Write the Markdown here (the figure goes next "
              "to it) instead of stdout (figure into FOLDER).")
@click.option("--no-fit", is_flag=True, help="Leave out the fitted model and its error.")
@click.option("--min-ranks", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--cores", type=click.IntRange(min=0), help="As for `bench fit`: the contended model above this "
              "many processes per node (0: off). Default: this machine's cores if FOLDER was measured on it.")
def report(folder, out, no_fit, min_ranks, cores):
    """Turn a sweep FOLDER of `bench comm --json` files into Markdown tables and a figure."""
    from ..insight.bench.report import write_report
    text = write_report(folder, out, fit=not no_fit, min_ranks=min_ranks, cores=cores)
    if not out:
        click.echo(text)


@bench.command()
@click.option("--out", type=click.Path(dir_okay=False), help="Write the measured profile (JSON) here.")
@click.option("--sizes", help="Also print what `--comm auto` chooses for gradients of these sizes "
              "(bytes; K, M, G are powers of 1024), without buckets.")
def probe(out, sizes):
    """Measure the links and cores of this job in a second or so (run under mpirun): the profile
    `train --comm auto` uses when no --profile is given."""
    from mpi4py import MPI

    from ..insight import auto
    from ..insight.bench import model, probe as probe_links
    from ..insight.bench.comm import ranks_per_node
    world = MPI.COMM_WORLD
    byte_sizes = _parse_sizes(sizes) if sizes else []
    profile = probe_links.measure(world)
    per_node = ranks_per_node(world)
    if world.Get_rank() != 0:
        return
    click.echo(f"probe on {world.Get_size()} rank(s), {per_node} per node: alpha = {profile['alpha_s'] * 1e6:.3g} us, "
               f"beta = {profile['beta_s_per_byte'] * 1e12:.4g} ps/byte, gamma = "
               f"{profile['gamma_s_per_byte'] * 1e12:.4g} ps/byte, {profile['flops_per_s'] / 1e9:.3g} GFLOP/s "
               f"({profile['source']})")
    for nbytes in byte_sizes:
        ranked = auto.rank(auto.candidates(world.Get_size(), per_node), nbytes, world.Get_size(), profile, per_node)
        for line in auto.describe_choice(ranked, nbytes, world.Get_size(), per_node, "probe"):
            click.echo(line)
    if out:
        with open(out, "w") as handle:
            json.dump(dict(profile, ranks=world.Get_size(), ranks_per_node=per_node, machine=model.machine_kind(),
                           model="firecaffe.insight.bench.probe", version=1), handle, indent=1)
        click.echo(f"profile written to {out}")
