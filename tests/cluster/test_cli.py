"""Parsing of link rates and of exec/run command lines (no root needed)."""
import click
import pytest

from firecaffe.cli.cluster import EXEC_OPTIONS, RUN_OPTIONS, _parse
from firecaffe.cluster.launch import LINK_ENV, job_environment
from firecaffe.cluster.links import parse_rate, tbf
from firecaffe.errors import FirecaffeError


@pytest.mark.parametrize("text, bits", [("100M", 10**8), ("100Mbit", 10**8), ("1G", 10**9), ("1gbit", 10**9),
                                        ("2.5G", 25 * 10**8), ("500k", 5 * 10**5), ("1e9", 10**9)])
def test_link_rates_are_decimal_bits_per_second(text, bits):
    assert parse_rate(text) == bits


@pytest.mark.parametrize("text", ["fast", "0", "-1G", "10", "1T"])
def test_a_bad_link_rate_says_what_to_give(text):
    with pytest.raises(FirecaffeError, match="give bits per second of at least 8k, e.g. 100M or 1G"):
        parse_rate(text)


def test_token_bucket_burst_is_a_few_milliseconds_and_at_least_one_gso_packet():
    assert tbf(10**9)[:4] == ["tbf", "rate", "1000000000bit", "burst"] and int(tbf(10**9)[4]) == 500000
    assert int(tbf(10**6)[4]) == 65536


def test_exec_passes_mpiexec_options_through_and_keeps_the_commands_own():
    ctx = click.Context(click.Command("exec"))
    ours, mpiexec, command = _parse(ctx, ["-n", "4", "-genv", "OMP_NUM_THREADS", "1", "--", "python", "x.py",
                                          "-n", "3"], EXEC_OPTIONS)
    assert ours == {"ranks": 4}
    assert mpiexec == ["-genv", "OMP_NUM_THREADS", "1"]
    assert command == ["python", "x.py", "-n", "3"]
    ours, mpiexec, command = _parse(ctx, ["--nodes=3", "--link", "1G", "python", "x.py"], RUN_OPTIONS)
    assert ours == {"nodes": 3, "rate": "1G"} and mpiexec == [] and command == ["python", "x.py"]


def test_exec_without_a_command_is_a_usage_error():
    with pytest.raises(click.UsageError, match="give the command to run"):
        _parse(click.Context(click.Command("exec")), ["-n", "2", "--"], EXEC_OPTIONS)


def test_run_without_nodes_and_link_says_both_are_needed():
    from firecaffe.cli.cluster import run
    with pytest.raises(click.UsageError, match=r"run needs --nodes N and --link RATE, e.g. firecaffe cluster run "):
        _parse(click.Context(run), [], RUN_OPTIONS, required=("--nodes", "--link"))
    with pytest.raises(click.UsageError, match=r"run needs --link RATE"):
        _parse(click.Context(run), ["--nodes", "2", "--", "hostname"], RUN_OPTIONS, required=("--nodes", "--link"))


@pytest.mark.parametrize("command, flags", [("run", ["--nodes N", "--link RATE", "--ppn K", "--mtu B", "--tcp NAME",
                                                     "-n P", "--name NAME", "--timeout S"]),
                                            ("exec", ["-n P", "--name NAME", "--timeout S"])])
def test_help_of_exec_and_run_lists_their_options(command, flags):
    from click.testing import CliRunner
    from firecaffe.cli.cluster import cluster
    result = CliRunner().invoke(cluster, [command, "--help"])
    assert result.exit_code == 0
    options = result.output.split("Options:")[1]
    for flag in flags:
        assert f"  {flag} " in options, flag
    assert "mpiexec options" in options and ("[required]" in options) == (command == "run")


def test_jobs_talk_tcp_over_the_links_unless_the_user_chose_otherwise():
    assert job_environment({})["MPICH_CH4_NETMOD"] == "ofi" and job_environment({})["FI_PROVIDER"] == "tcp"
    assert job_environment({"FI_PROVIDER": "sockets"})["FI_PROVIDER"] == "sockets"
    assert set(LINK_ENV) == {"MPICH_CH4_NETMOD", "FI_PROVIDER", "FI_TCP_IFACE"}



def test_run_says_when_the_cluster_is_up_and_when_it_is_removed(monkeypatch):
    from click.testing import CliRunner
    import firecaffe.cluster as emulated
    from firecaffe.cli.cluster import cluster
    from firecaffe.cluster.links import plan
    events = []
    monkeypatch.setattr(emulated, "up", lambda nodes, rate, ppn, name, mtu, tcp: events.append("up") or
                        plan(name, nodes, 10**9, ppn, mtu, tcp))
    monkeypatch.setattr(emulated, "execute", lambda *args: events.append("exec") or 0)
    monkeypatch.setattr(emulated, "down", lambda name: events.append("down"))
    result = CliRunner().invoke(cluster, ["run", "--nodes", "2", "--link", "1G", "--", "hostname"])
    assert result.exit_code == 0 and events == ["up", "exec", "down"]
    lines = result.output.splitlines()
    assert lines[0].startswith("cluster 'fc': 2 node(s) ") and lines[0].endswith(" -- up")
    assert lines[-1] == "cluster 'fc' removed"
    assert [node["namespace"] for node in plan("fc", 2, 10**9, 1, 1500, "reno")["nodes"]] == ["fc-node0", "fc-node1"]
