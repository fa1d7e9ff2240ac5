"""`firecaffe python script.py [args]` (or `-m module [args]`): run a pycaffe script
unchanged, its `import caffe` resolving to firecaffe for this run only.

Nothing named `caffe` is installed, so a real pycaffe elsewhere on the machine is
never shadowed; inside the run `caffe` is firecaffe and `caffe.X.Y` is
`firecaffe.X.Y` (caffe.proto.caffe_pb2, caffe.io, caffe.draw, caffe.net_spec,
caffe.coord_map, caffe.classifier, caffe.detector, ...) -- the same module objects,
not copies, so `caffe.io.Transformer is firecaffe.io.Transformer`. The script runs
as __main__ with sys.argv and sys.path[0] set as `python script.py` sets them.
"""
import importlib
import importlib.abc
import importlib.util
import os
import runpy
import sys

import click

ALIAS, TARGET = "caffe", "firecaffe"


class CaffeAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """A finder that answers `caffe` and `caffe.*` with firecaffe's modules."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != ALIAS and not fullname.startswith(ALIAS + "."):
            return None
        real_name = TARGET + fullname[len(ALIAS):]
        try:
            real = importlib.import_module(real_name)
        except ModuleNotFoundError as exc:
            if exc.name == real_name:       # firecaffe has no such module: caffe.X is not found either
                return None
            raise
        spec = importlib.util.spec_from_loader(fullname, self, is_package=hasattr(real, "__path__"))
        spec.loader_state = real.__spec__               # firecaffe's own spec, to put back
        return spec

    def create_module(self, spec):
        return sys.modules[spec.loader_state.name]

    def exec_module(self, module):
        module.__spec__ = module.__spec__.loader_state  # the import system gave it the alias's spec


def install():
    """Make `import caffe` mean firecaffe in this process (first on the finder list)."""
    if not any(isinstance(finder, CaffeAlias) for finder in sys.meta_path):
        sys.meta_path.insert(0, CaffeAlias())
    for name in [n for n in sys.modules if n == ALIAS or n.startswith(ALIAS + ".")]:
        if not sys.modules[name].__name__.startswith(TARGET):
            del sys.modules[name]                  # a real pycaffe imported before: not in this run


@click.command("python", context_settings={"ignore_unknown_options": True,
                                           "allow_interspersed_args": False})
@click.option("-m", "module", metavar="MODULE", help="Run a library module as a script (as python -m), "
              "e.g. -m pytest.")
@click.argument("script", required=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def python_cmd(module, script, args):
    """Run a pycaffe SCRIPT unchanged: its `import caffe` is firecaffe for this run.

    \b
    firecaffe python classify.py --gpu 0        # python classify.py, with caffe = firecaffe
    firecaffe python -m pytest python/caffe/test
    Nothing named caffe is installed: a real pycaffe stays usable everywhere else.
    """
    if module is None and script is None:
        raise click.UsageError("give a script to run (firecaffe python script.py [ARGS]) "
                               "or a module (firecaffe python -m MODULE [ARGS])")
    install()
    if module is not None:
        sys.argv = [module] + ([script] if script is not None else []) + list(args)
        sys.path.insert(0, os.getcwd())
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return
    if not os.path.exists(script):
        raise click.UsageError(f"no such script: {script}")
    sys.argv = [script] + list(args)
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")
