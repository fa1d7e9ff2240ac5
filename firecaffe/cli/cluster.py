"""``firecaffe cluster``: up, exec, status, down, run on an emulated cluster (firecaffe.cluster)."""
import contextlib
import json
import signal
import sys

import click

from ..cluster.links import DEFAULT_MTU, DEFAULT_TCP

HELP = {
    "--name": "Cluster name (prefixes its namespaces and interfaces).",
    "--nodes": "Number of nodes.",
    "--link": "Each node's link rate in bits/s, both directions: 100M, 1G, ...",
    "--ppn": "Ranks per node (they share memory inside the node).",
    "--mtu": "Largest frame on the links, bytes (9000: jumbo frames, as on most cluster fabrics; "
             "fewer packets for the machine's cores to carry).",
    "--tcp": "TCP congestion control inside the nodes (loss-based, as a real link needs: the token "
             "bucket's bursts fool BBR's bandwidth estimate).",
    "-n": "MPI ranks to start [default: nodes x ppn].",
    "--timeout": "Seconds before the job is killed [default: none].",
}
NAME_OPTION = click.option("--name", default="fc", show_default=True, help=HELP["--name"])
NODES_OPTION = click.option("--nodes", type=click.IntRange(min=1), required=True, help=HELP["--nodes"])
LINK_OPTION = click.option("--link", "rate", required=True, metavar="RATE", help=HELP["--link"])
PPN_OPTION = click.option("--ppn", type=click.IntRange(min=1), default=1, show_default=True, help=HELP["--ppn"])
MTU_OPTION = click.option("--mtu", type=int, default=DEFAULT_MTU, show_default=True, help=HELP["--mtu"])
TCP_OPTION = click.option("--tcp", default=DEFAULT_TCP, show_default=True, metavar="NAME", help=HELP["--tcp"])
PASSTHROUGH = {"ignore_unknown_options": True, "allow_interspersed_args": False}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cluster():
    """An emulated cluster on this machine: nodes are network namespaces, links have a set bandwidth (root)."""


@cluster.command()
@NODES_OPTION
@LINK_OPTION
@PPN_OPTION
@NAME_OPTION
@MTU_OPTION
@TCP_OPTION
def up(nodes, rate, ppn, name, mtu, tcp):
    """Make NODES namespaces on a bridge, each node's link limited to RATE in both directions."""
    from .. import cluster as emulated
    state = emulated.up(nodes, rate, ppn, name, mtu, tcp)
    click.echo(_summary(state))


@cluster.command(name="exec", context_settings=PASSTHROUGH, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def exec_cmd(ctx, args):
    """Run mpiexec on the nodes: exec [-n P] [--name NAME] [--timeout S] [mpiexec options] -- COMMAND...

    The environment makes MPICH talk over the links (MPICH_CH4_NETMOD=ofi,
    FI_PROVIDER=tcp); ranks fill the nodes in order, ppn per node.
    """
    from .. import cluster as emulated
    ours, mpiexec_args, command = _parse(ctx, args, EXEC_OPTIONS)
    with _one_line_on_stop():
        sys.exit(emulated.execute(command, ours.get("ranks"), mpiexec_args, ours.get("name", "fc"),
                                  ours.get("timeout")))


@cluster.command(context_settings=PASSTHROUGH, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run(ctx, args):
    """Up, exec, down: run --nodes N --link RATE [--ppn K] [--mtu B] [--tcp CC] [-n P] [mpiexec options] -- COMMAND...

    The cluster is taken down when the job ends, fails or is interrupted.
    """
    from .. import cluster as emulated
    ours, mpiexec_args, command = _parse(ctx, args, RUN_OPTIONS, required=("--nodes", "--link"))
    name = ours.get("name", "fc")
    with _one_line_on_stop():
        sys.exit(emulated.run(command, ours["nodes"], ours["rate"], ours.get("ppn", 1), ours.get("ranks"),
                              mpiexec_args, name, ours.get("timeout"), ours.get("mtu", DEFAULT_MTU),
                              ours.get("tcp", DEFAULT_TCP),
                              on_up=lambda state: click.echo(_summary(state) + " -- up", err=True),
                              on_down=lambda: click.echo(f"cluster {name!r} removed", err=True)))


@contextlib.contextmanager
def _one_line_on_stop():
    """SIGINT or SIGTERM to exec or run: one line saying what became of the job, exit 128 + the signal."""
    from ..cluster import Stopped
    try:
        yield
    except Stopped as stop:
        status = stop.job_status
        job = ("mpiexec had not started" if status is None else f"mpiexec ended with status {status}"
               if status >= 0 else f"mpiexec was killed ({signal.Signals(-status).name})")
        click.echo(f"firecaffe: cluster: stopped by {stop}, passed to the job once; {job}", err=True)
        sys.exit(128 + stop.signum)


@cluster.command()
@NAME_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the state and byte counts as JSON.")
def status(name, as_json):
    """The nodes, their link rate and state, and the bytes each link carried."""
    from .. import cluster as emulated
    state, rows = emulated.status(name)
    if as_json:
        click.echo(json.dumps({"state": state, "links": [
            {"node": node["hostname"], "address": node["address"], "link": link, "sent_bytes": sent,
             "received_bytes": received} for node, link, sent, received in rows]}, indent=1))
        return
    click.echo(_summary(state))
    click.echo(f"{'node':12s} {'address':15s} {'link':5s} {'sent MB':>10s} {'received MB':>12s}")
    for node, link, sent, received in rows:
        click.echo(f"{node['hostname']:12s} {node['address']:15s} {link:5s} {_mb(sent):>10s} {_mb(received):>12s}")


@cluster.command()
@NAME_OPTION
def down(name):
    """Remove the namespaces, links and bridge the cluster made (nothing else); fine if none is up."""
    from .. import cluster as emulated
    click.echo(f"cluster {name!r} {'removed' if emulated.down(name) else 'was not up'}")


# Options of exec and run, parsed by hand: click would read mpiexec's -genv as -g -e -n v.
# flag -> (key, type, metavar, default shown in --help)
EXEC_OPTIONS = {"-n": ("ranks", int, "P", None), "--name": ("name", str, "NAME", "fc"),
                "--timeout": ("timeout", float, "S", None)}
RUN_OPTIONS = {"--nodes": ("nodes", int, "N", None), "--link": ("rate", str, "RATE", None),
               "--ppn": ("ppn", int, "K", 1), "--mtu": ("mtu", int, "B", DEFAULT_MTU),
               "--tcp": ("tcp", str, "NAME", DEFAULT_TCP), **EXEC_OPTIONS}


def _help(ctx, known, required):
    """The command's help with its options listed, as click lists them for the other commands."""
    formatter = ctx.make_formatter()
    ctx.command.format_usage(ctx, formatter)
    ctx.command.format_help_text(ctx, formatter)
    rows = []
    for flag, (_, _, metavar, default) in known.items():
        extra = "  [required]" if flag in required else (f"  [default: {default}]" if default is not None else "")
        rows.append((f"{flag} {metavar}", HELP[flag] + extra))
    rows += [("mpiexec options", "Anything else before -- goes to mpiexec (-genv NAME VALUE, ...)."),
             ("-h, --help", "Show this message and exit.")]
    with formatter.section("Options"):
        formatter.write_dl(rows)
    return formatter.getvalue().rstrip("\n")


def _parse(ctx, args, known, required=()):
    """``(our options, mpiexec options, command)`` from ``[options] [mpiexec options] -- COMMAND``.

    Without ``--`` the command starts at the first word that is not one of our options.
    """
    args = list(args)
    cut = args.index("--") if "--" in args else None
    head, command = (args[:cut], args[cut + 1:]) if cut is not None else (args, [])
    ours, rest, i = {}, [], 0
    while i < len(head):
        word = head[i]
        flag, _, inline = word.partition("=")
        if word in ("-h", "--help"):
            click.echo(_help(ctx, known, required))
            ctx.exit(0)
        if flag in known:
            key, kind = known[flag][:2]
            value = inline if inline else (head[i + 1] if i + 1 < len(head) else None)
            if value is None:
                raise click.UsageError(f"{flag} needs a value")
            try:
                ours[key] = kind(value)
            except ValueError:
                raise click.UsageError(f"{flag} {value!r}: expected {kind.__name__}") from None
            i += 1 if inline else 2
        elif cut is None:
            command = head[i:]
            break
        else:
            rest.append(word)
            i += 1
    what = ctx.command.name
    missing = [flag for flag in required if known[flag][0] not in ours]
    if missing:
        raise click.UsageError(f"{what} needs {' and '.join(f'{f} {known[f][2]}' for f in missing)}, e.g. "
                               f"firecaffe cluster {what} --nodes 4 --link 1G -- python train.py")
    if not command:
        raise click.UsageError(f"give the command to run, after --: firecaffe cluster {what} ... -- python train.py")
    for key in ("ranks", "nodes", "ppn"):
        if key in ours and ours[key] < 1:
            raise click.UsageError(f"{key} must be at least 1, got {ours[key]}")
    return ours, rest, command


def _summary(state):
    from ..cluster.links import human_rate
    nodes = state["nodes"]
    return (f"cluster {state['name']!r}: {len(nodes)} node(s) {nodes[0]['address']}..{nodes[-1]['address']}, "
            f"links {human_rate(state['rate_bps'])} each way (MTU {state.get('mtu', DEFAULT_MTU)}, "
            f"TCP {state.get('tcp', 'as the host')}), "
            f"{state['ppn']} rank(s) per node, "
            f"bridge {state['bridge']}")


def _mb(count):
    return "-" if count is None else f"{count / 1e6:.2f}"
