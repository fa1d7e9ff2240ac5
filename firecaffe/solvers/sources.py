"""The nets a solver trains and tests, found as Caffe finds them in a SolverParameter.

One of ``net``, ``net_param``, ``train_net``, ``train_net_param`` gives the train net;
``test_net``/``test_net_param`` the test nets, else the general net once per ``test_iter``.
Paths resolve against the working directory, then the solver file's folder.
"""
from ..engine.net import Net
from ..errors import FirecaffeError
from .checks import resolve


def train_source(param, solver_path):
    """The train net: a path or a NetParameter."""
    given = [f for f in ("train_net_param", "train_net", "net_param", "net") if param.HasField(f)]
    if len(given) != 1:
        where = solver_path or "solver"
        if not given:
            raise FirecaffeError(f"{where}: no net given (set one of net, net_param, train_net, train_net_param)")
        raise FirecaffeError(f"{where}: give only one of net, net_param, train_net, train_net_param "
                             f"(found {', '.join(given)})")
    field = given[0]
    return resolve(getattr(param, field), solver_path) if field in ("train_net", "net") else getattr(param, field)


def test_sources(param, solver_path):
    """``[(source, NetState or None)]``, one per test net."""
    sources = [resolve(path, solver_path) for path in param.test_net] + list(param.test_net_param)
    if not sources and len(param.test_iter):
        sources = [train_source(param, solver_path)] * len(param.test_iter)
    if len(param.test_iter) != len(sources):
        raise FirecaffeError(f"{solver_path or 'solver'}: {len(sources)} test net(s) but "
                             f"{len(param.test_iter)} test_iter value(s); give one test_iter per test net")
    states = list(param.test_state) + [None] * (len(sources) - len(param.test_state))
    return list(zip(sources, states))


def make_net(phase, source, state, shard=(0, 1), edit=None, ledger=None):
    """The Net of ``phase`` from ``source`` under ``state``; ``edit(NetParameter)`` may change it first;
    ``ledger``: a MemoryLedger the net's blobs count in (a solver's nets share one)."""
    from ..proto import io
    level = state.level if state is not None else 0
    stages = list(state.stage) if state is not None else []
    path = source if isinstance(source, str) else None
    if edit is not None:
        source = io.read_net(source) if path else source
        edit(source)
    return Net(source, phase=phase, level=level, stages=stages, shard=shard, source=path, ledger=ledger)


def chain(*edits):
    """One function applying every given edit of a NetParameter in turn (None: skipped)."""
    edits = [edit for edit in edits if edit is not None]

    def edit_all(net_param):
        for edit in edits:
            edit(net_param)
    return edit_all
