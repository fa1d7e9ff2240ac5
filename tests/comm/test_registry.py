"""The strategy registry: one file per strategy drives --comm choices, the cost model and the predictions."""
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

import firecaffe.comm as comm
from firecaffe.comm.base import Strategy
from firecaffe.errors import FirecaffeError
from firecaffe.insight import predict
from firecaffe.insight.bench import model

# A whole strategy in one file: a name, a cost formula and (for the run) its _allreduce.
GOSSIP = textwrap.dedent('''
    from firecaffe.comm.base import Strategy


    class Gossip(Strategy):
        name = "gossip"
        order = 45

        def _allreduce(self, buf):
            raise NotImplementedError

        @classmethod
        def cost_coefficients(cls, n, p, **options):
            return float(p), float(p * n), float(n)

        @classmethod
        def busiest_rank(cls, n, p, **options):
            return float(p), float(2 * p * n), float(n)

        @classmethod
        def messages(cls, p, **options):
            return p * p
''')


@pytest.fixture(name="gossip")
def gossip_strategy(tmp_path, monkeypatch):
    """firecaffe/comm with one more file in it (a folder added to the package's path)."""
    (tmp_path / "gossip.py").write_text(GOSSIP)
    monkeypatch.setattr(comm, "__path__", [*comm.__path__, str(tmp_path)])
    comm.registry.cache_clear()
    yield
    sys.modules.pop("firecaffe.comm.gossip", None)
    monkeypatch.undo()
    comm.registry.cache_clear()


def test_registry_lists_every_strategy_file_in_order():
    assert comm.names() == ("tree", "dbtree", "ring", "mpi", "ps", "hier", "nccl")
    assert comm.names(default_only=True) == ("tree", "dbtree", "ring", "mpi", "ps", "hier")   # nccl needs a GPU
    for name in comm.names():
        assert issubclass(comm.strategy_class(name), Strategy)
        assert comm.strategy_class(name).name == name


def test_unknown_strategy_names_the_valid_ones():
    with pytest.raises(FirecaffeError, match="choose one of: tree, dbtree, ring, mpi, ps, hier, nccl"):
        comm.make_strategy("allgather", world=None)


def test_adding_a_strategy_is_adding_one_file(gossip):
    assert comm.names() == ("tree", "dbtree", "ring", "mpi", "ps", "gossip", "hier", "nccl")
    # the cost model, its traffic and its fit
    assert model.coefficients("gossip", 1000, 4) == (4, 4000, 1000)
    assert model.busiest_rank("gossip", 1000, 4) == (4, 8000, 1000)
    assert model.totals("gossip", 1000, 4) == (16, 6000, 3000)
    assert model.traffic("gossip", 1000, 4) == (3000, 6000, 8000)
    assert model.predict("gossip", 1000, 4, {"alpha_s": 1, "beta_s_per_byte": 0, "gamma_s_per_byte": 0}) == 4
    records = [{"comm": "gossip", "bytes": n, "ranks": p, "median_s": model.predict("gossip", n, p, truth)}
               for truth in [{"alpha_s": 1e-6, "beta_s_per_byte": 1e-9, "gamma_s_per_byte": 1e-10}]
               for n in (1000, 10**6) for p in (2, 4, 8)]
    assert model.fit(records)["alpha_s"] == pytest.approx(1e-6)
    # the predictions of `analyze --workers`
    report = predict.add_prediction({"param_bytes": 1000}, [4], predict.make_profile())
    assert [r["comm"] for r in report["predicted"]] == ["tree", "dbtree", "ring", "mpi", "ps", "gossip", "hier"]
    # the --comm choices of `train` and `bench comm`
    from firecaffe.cli.options import comm_option, strategy_names
    assert strategy_names("gossip") == "gossip"
    assert strategy_names("tree,gossip", many=True) == ["tree", "gossip"]


def test_train_and_bench_take_their_comm_choices_from_the_registry(gossip):
    import click

    from firecaffe.cli.options import comm_option

    @click.command()
    @comm_option()
    def train(comm):
        click.echo(comm)

    @click.command()
    @comm_option(many=True)
    def bench(comms):
        click.echo(",".join(comms))

    runner = CliRunner()
    assert "tree, dbtree, ring, mpi, ps, gossip, hier, nccl" in " ".join(runner.invoke(train, ["--help"]).output.split())
    assert runner.invoke(train, ["--comm", "gossip"]).output == "gossip\n"
    assert runner.invoke(train, []).output == "tree\n"
    refused = runner.invoke(train, ["--comm", "pigeon"])
    assert refused.exit_code == 2 and "unknown communication strategy 'pigeon'" in refused.output
    assert runner.invoke(bench, []).output == "tree,dbtree,ring,mpi,ps,gossip,hier\n"   # the default: no GPU needed


def test_offline_tools_import_and_fit_without_mpi4py(tmp_path):
    # bench report, plot and fit, the cost model and the predictions never need MPI.
    code = textwrap.dedent('''
        import json, sys
        sys.modules["mpi4py"] = None
        import firecaffe.insight.bench.report, firecaffe.insight.bench.plot, firecaffe.insight.predict
        from click.testing import CliRunner
        from firecaffe.cli.bench import bench
        from firecaffe.insight.bench import model
        truth = {"alpha_s": 1e-6, "beta_s_per_byte": 1e-9, "gamma_s_per_byte": 1e-10}
        records = [{"version": 1, "comm": c, "bytes": n, "ranks": p, "num_servers": 0,
                    "median_s": model.predict(c, n, p, truth), "min_s": 0, "max_s": 0}
                   for c in ("tree", "ring", "mpi") for n in (4096, 2**20, 2**24) for p in (2, 4, 8)]
        json.dump(records, open(sys.argv[1], "w"))
        result = CliRunner().invoke(bench, ["fit", sys.argv[1], "--cores", "0"])
        print(result.output)
        sys.exit(result.exit_code)
    ''')
    path = tmp_path / "records.json"
    run = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "alpha" in run.stdout, run.stdout


def test_the_wait_policy_is_spin_unless_sleep_is_asked_and_a_typo_is_one_clear_error():
    from firecaffe.core.options import RunOptions
    assert RunOptions.build({}).wait == "spin" and RunOptions.build({"FIRECAFFE_WAIT": " Sleep "}).wait == "sleep"
    assert RunOptions.build({"FIRECAFFE_BUCKET_WAIT": "spin"}).bucket_wait == "spin"
    assert RunOptions.build({}, comm="ring").comm == "ring"
    with pytest.raises(FirecaffeError, match="FIRECAFFE_WAIT='slep': choose spin .* or sleep"):
        RunOptions.build({"FIRECAFFE_WAIT": "slep"})
