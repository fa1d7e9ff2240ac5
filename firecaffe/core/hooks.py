"""Observers of named steps: a list of callables per name, called in the order they were added.

The Net fires ``before_forward``/``after_forward``/``before_backward``/``after_backward``
with the layer's index (pycaffe's hooks, same names); the Solver fires ``iteration_start``
and ``iteration_end``; the data-parallel step fires ``span`` for each timed part (the
timeline listens). An emitter pays one truth test of an empty list when nobody listens.
"""


class Hooks:
    """``hooks.add(name, fn)``, ``hooks.remove(name, fn)``, ``hooks[name]`` (the list), ``hooks.fire(name, ...)``."""

    def __init__(self, *names):
        self._lists = {name: [] for name in names}

    def __getitem__(self, name):
        return self._lists[name]

    def add(self, name, fn, first=False):
        """Call ``fn`` at ``name`` after the hooks already there (``first``: before them)."""
        if name not in self._lists:
            raise ValueError(f"no hook named {name!r}; there are {', '.join(self._lists)}")
        if not callable(fn):
            raise TypeError(f"a {name} hook must be callable, got {type(fn).__name__}")
        self._lists[name].insert(0 if first else len(self._lists[name]), fn)
        return fn

    def remove(self, name, fn):
        self._lists[name].remove(fn)

    def fire(self, name, *args):
        for fn in self._lists[name]:
            fn(*args)
