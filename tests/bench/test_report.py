"""`bench fit` and `bench report` on result files written here, and their refusals."""
import json

import pytest
from click.testing import CliRunner

from firecaffe.insight.bench import model
from firecaffe.cli.bench import bench
from firecaffe.insight.bench.comm import add_ratios, plan, rank_counts
from firecaffe.insight.bench.report import load_records
from firecaffe.errors import FirecaffeError

TRUTH = {"alpha_s": 1e-5, "beta_s_per_byte": 1e-9, "gamma_s_per_byte": 2e-10}


def records_for(comm, ranks, sizes=(4096, 2**20, 2**24), servers=1):
    out = []
    for n in sizes:
        for p in ranks:
            t = model.predict(comm, n, p, TRUTH, servers)
            out.append({"version": 1, "comm": comm, "bytes": n, "ranks": p, "median_s": t, "min_s": t * 0.9,
                        "max_s": t * 1.2, "num_servers": servers if comm == "ps" else 0})
    return out


@pytest.fixture(name="sweep")
def sweep_folder(tmp_path):
    folder = tmp_path / "sweep"
    folder.mkdir()
    for p in (2, 4, 8):
        (folder / f"p{p}.json").write_text(json.dumps(
            [r for comm in ("tree", "ring", "mpi") for r in records_for(comm, [p])]))
        (folder / f"ps_p{p}.json").write_text(json.dumps(records_for("ps", [p])))
    return folder


def test_fit_recovers_the_profile_and_writes_it(sweep, tmp_path):
    out = tmp_path / "profile.json"
    result = CliRunner().invoke(bench, ["fit", str(sweep), "--out", str(out), "--per-strategy"])
    assert result.exit_code == 0, result.output
    profile = json.loads(out.read_text())
    for key in model.PROFILE_KEYS:
        assert profile[key] == pytest.approx(TRUTH[key], rel=1e-6)
    assert "largest error at >= 4 ranks: 0%" in result.output
    assert "fit over ring" in result.output


def test_report_writes_markdown_tables_and_a_figure(sweep, tmp_path):
    out = tmp_path / "report" / "README.md"
    out.parent.mkdir()
    result = CliRunner().invoke(bench, ["report", str(sweep), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "| ranks | tree | ring | mpi | ps |" in text and "#### 16 MiB (16,777,216 bytes)" in text
    assert "(x" in text and "Fitted model" in text
    assert (out.parent / "scaling.png").stat().st_size > 1000


def test_results_of_another_version_are_refused(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps([dict(records_for("tree", [2])[0], version=0)]))
    result = CliRunner().invoke(bench, ["fit", str(path)])
    assert result.exit_code != 0 and "version 0" in str(result.exception)
    with pytest.raises(FirecaffeError, match="JSON list"):
        path.write_text("{}")
        load_records(path)


def test_report_of_an_empty_folder_is_refused(tmp_path):
    result = CliRunner().invoke(bench, ["report", str(tmp_path)])
    assert isinstance(result.exception, FirecaffeError) and "no *.json" in str(result.exception)


def test_rank_counts_and_plan():
    assert rank_counts(8, sweep=True) == [2, 4, 8]
    assert rank_counts(9, sweep=True) == [2, 4, 8, 9]
    assert rank_counts(9) == [9]
    with pytest.raises(FirecaffeError, match="do not fit"):
        rank_counts(4, ranks=[2, 8])
    # ps takes the largest worker count that leaves room for its server, and mpi follows it
    assert plan(["tree", "ps", "mpi"], 8, [2, 8], servers=1) == [
        ("tree", 2), ("tree", 8), ("ps", 2), ("ps", 7), ("mpi", 2), ("mpi", 8), ("mpi", 7)]
    with pytest.raises(FirecaffeError, match="needs 9 ranks"):
        plan(["ps"], 8, [8], servers=1, explicit=True)


def test_ratio_to_mpi():
    records = add_ratios([{"comm": "mpi", "bytes": 8, "ranks": 2, "median_s": 2.0},
                          {"comm": "tree", "bytes": 8, "ranks": 2, "median_s": 3.0},
                          {"comm": "tree", "bytes": 8, "ranks": 4, "median_s": 3.0}])
    assert [r["ratio_to_mpi"] for r in records] == [1.0, 1.5, None]


def test_the_comm_table_has_no_empty_column_and_says_its_units_once():
    from firecaffe.insight.bench.comm import format_table
    row = {"comm": "tree", "bytes": 2**20, "ranks": 2, "median_s": 1e-3, "min_s": 1e-3, "max_s": 2e-3,
           "algbw_Bps": 1e9, "ratio_to_mpi": None, "num_servers": 0, "correct": True}
    text = format_table([row])
    assert "x mpi" not in text and "1 MiB" in text
    assert text.count("2^20") == 1 and text.count("10^9") == 1
    with_mpi = format_table([dict(row, comm="mpi", ratio_to_mpi=1.0), dict(row, ratio_to_mpi=1.5)])
    assert "x mpi" in with_mpi and with_mpi.splitlines()[2].endswith("1.50")
