"""The `firecaffe` command: train, test, time, analyze (and bench, design, cluster,
compress/decompress (Deep Compression, .fcz), python: run a pycaffe script with `import caffe`
resolving to firecaffe).

Errors meant for people (FirecaffeError) print as one line and exit 1 (an exception
from a user's Python layer prints the layer and the user's own frames); under
MPI a failing rank takes the whole job down with its rank named.
"""
import sys

import click

from ..errors import FirecaffeError
from .design import design
from .bench import bench
from .cluster import cluster
from .compress import compress, decompress
from .inspect import analyze, test, time_cmd
from .python import python_cmd
from .train import train


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="firecaffe")
def cli():
    """Train and measure Caffe networks on NumPy/CuPy, data-parallel over MPI."""


for _command in (train, test, time_cmd, analyze, bench, design, cluster, compress, decompress, python_cmd):
    cli.add_command(_command)


def main(argv=None):
    """Entry point: run the CLI; print FirecaffeErrors without a traceback."""
    from ..run.process import RankProcess
    rank = RankProcess(entry_point=True)   # what this process tells when it ends (train's watcher, failure context)
    from ..run import early_signals
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] != "train":
        early_signals.resume()       # only train takes over the signals deferred during start-up
    try:
        cli.main(args=argv, standalone_mode=False, obj=rank)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except FirecaffeError as exc:
        _fail(str(exc), rank)
    except KeyboardInterrupt:
        _fail("interrupted", rank)
    except MemoryError:
        _fail("out of memory: reduce batch_size (per rank) or use more ranks", rank)
    except Exception as exc:            # a user's Python layer raised: its report, not our frames
        from ..ops.python_layer import report
        if report(exc) is None:
            raise
        _fail(report(exc), rank)


def _fail(message, rank):
    from ..run import mpi_util
    world = mpi_util.world()
    where = f"rank {world.Get_rank()} of {world.Get_size()}: " if world is not None and world.Get_size() > 1 else ""
    text = f"firecaffe: {where}error: {message}\n"
    if where:
        rank.last_words.disarm()       # this rank has said why it ends: its last-words watcher stays quiet
        mpi_util.say_and_abort(world, text, 1)
    click.echo(text, err=True, nl=False)
    sys.exit(1)
