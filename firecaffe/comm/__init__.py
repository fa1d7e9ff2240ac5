"""Gradient-reduction strategies, one file each, behind one seam (``base.Strategy``).

The registry is this package itself: every module here that defines a
``Strategy`` subclass with a ``name`` adds that strategy, so adding one is
adding one file. ``--comm`` choices, the cost model (insight/bench/model.py),
the predictions (insight/predict.py) and the benchmark all read ``names()``
and ``strategy_class(name)``. Importing the registry needs neither mpi4py nor
CuPy (strategy modules import them inside their methods).
"""
import functools
import importlib
import inspect
import pkgutil

from ..errors import FirecaffeError
from .base import Strategy


@functools.cache
def registry():
    """``{name: Strategy subclass}`` of every strategy module in this package, in their ``order``."""
    found = []
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Strategy) and cls.name and cls.__module__ == module.__name__:
                found.append(cls)
    found.sort(key=lambda cls: (cls.order, cls.name))
    names = [cls.name for cls in found]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise FirecaffeError(f"strategy name(s) {', '.join(duplicates)} declared twice in firecaffe/comm")
    return {cls.name: cls for cls in found}


def names(default_only=False):
    """The strategy names a user can pick with ``--comm``; ``default_only``: those that run without a GPU."""
    return tuple(name for name, cls in registry().items() if not (default_only and cls.needs_gpu))


def strategy_class(name):
    """The Strategy subclass registered as ``name``."""
    strategies = registry()
    if name not in strategies:
        raise FirecaffeError(f"unknown communication strategy {name!r}; "
                             f"choose one of: {', '.join(strategies)}")
    return strategies[name]


def make_strategy(name, world, **options):
    """This rank's ``name`` strategy in a job over ``world`` (a worker, or a server for ps).

    Options go to the strategy: ``wait`` ("spin" or "sleep": comm/polite.py) and
    ``cuda_aware`` for all, ``chunk_bytes`` for the trees and the ring, ``servers``
    for ps, ``inter`` for hier; a strategy ignores the options of the others.
    """
    return strategy_class(name)(world, **options)
