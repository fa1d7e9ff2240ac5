"""``firecaffe cluster``: up, exec, status, down, run on an emulated cluster (firecaffe.cluster)."""
import json
import sys

import click

from ..cluster.links import DEFAULT_MTU, DEFAULT_TCP

NAME_OPTION = click.option("--name", default="fc", show_default=True,
                           help="Cluster name (prefixes its namespaces and interfaces).")
NODES_OPTION = click.option("--nodes", type=click.IntRange(min=1), required=True, help="Number of nodes.")
LINK_OPTION = click.option("--link", "rate", required=True, metavar="RATE",
                           help="Each node's link rate in bits/s, both directions: 100M, 1G, ...")
PPN_OPTION = click.option("--ppn", type=click.IntRange(min=1), default=1, show_default=True,
                          help="Ranks per node (they share memory inside the node).")
MTU_OPTION = click.option("--mtu", type=int, default=DEFAULT_MTU, show_default=True,
                          help="Largest frame on the links, bytes (9000: jumbo frames, as on most cluster "
                               "fabrics; fewer packets for the machine's cores to carry).")
TCP_OPTION = click.option("--tcp", default=DEFAULT_TCP, show_default=True, metavar="NAME",
                          help="TCP congestion control inside the nodes (loss-based, as a real link "
                               "needs: the token bucket's bursts fool BBR's bandwidth estimate).")
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
    ours, mpiexec_args, command = _parse(ctx, args, RUN_OPTIONS)
    for required in ("nodes", "rate"):
        if required not in ours:
            raise click.UsageError(f"run needs --{'link' if required == 'rate' else required}")
    sys.exit(emulated.run(command, ours["nodes"], ours["rate"], ours.get("ppn", 1), ours.get("ranks"),
                          mpiexec_args, ours.get("name", "fc"), ours.get("timeout"), ours.get("mtu", DEFAULT_MTU),
                          ours.get("tcp", DEFAULT_TCP)))


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
EXEC_OPTIONS = {"-n": ("ranks", int), "--name": ("name", str), "--timeout": ("timeout", float)}
RUN_OPTIONS = dict(EXEC_OPTIONS, **{"--nodes": ("nodes", int), "--link": ("rate", str), "--ppn": ("ppn", int),
                                    "--mtu": ("mtu", int), "--tcp": ("tcp", str)})


def _parse(ctx, args, known):
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
            click.echo(ctx.get_help())
            ctx.exit(0)
        if flag in known:
            key, kind = known[flag]
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
    if not command:
        raise click.UsageError("give the command to run, after --: ... -- python train.py")
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
