"""Gradient-reduction strategies, one file each, behind one interface (``base.Communicator``).

``make_communicator(name, comm)`` builds the strategy named on the command line
(``--comm tree``) over ``comm``, the mpi4py communicator of the worker ranks.
Strategy modules are imported on first use, so importing this package needs
neither mpi4py nor CuPy.
"""
import importlib

from ..errors import FirecaffeError

# name -> (module in this package, class): the strategies a user can pick with --comm.
STRATEGIES = {
    "tree": ("tree", "TreeCommunicator"),
    "ring": ("ring", "RingCommunicator"),
    "mpi": ("mpi", "MPICommunicator"),
    "ps": ("ps", "PSWorker"),
    "nccl": ("nccl", "NCCLCommunicator"),
}


def strategy_names():
    """The names ``--comm`` accepts."""
    return list(STRATEGIES)


def strategy_class(name):
    """The Communicator subclass registered as ``name``."""
    if name not in STRATEGIES:
        raise FirecaffeError(f"unknown communication strategy {name!r}; "
                             f"choose one of: {', '.join(STRATEGIES)}")
    module, cls = STRATEGIES[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def make_communicator(name, comm, **options):
    """A ``name`` communicator over the worker communicator ``comm``.

    Options go to the strategy: ``chunk_bytes`` for tree, ``split`` (from
    ``ps.split_servers``) for ps.
    """
    return strategy_class(name)(comm, **options)
