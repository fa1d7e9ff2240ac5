"""`bench fit` refuses to write a degenerate profile (zero coefficient, infinite bandwidth, large errors)."""
import json

import pytest
from click.testing import CliRunner

from firecaffe.cli import main
from firecaffe.cli.bench import bench
from firecaffe.insight.bench import model, sanity

LINK_ONLY = {"alpha_s": 0.0, "beta_s_per_byte": 8e-9, "gamma_s_per_byte": 0.0}


def write_records(path, profile, noise=None):
    records = []
    for comm in ("tree", "ring", "ps"):
        for n in (2**20, 2**24):
            for p in (2, 4, 8):
                t = model.predict(comm, n, p, profile) * (noise(comm, n, p) if noise else 1.0)
                records.append({"version": 1, "comm": comm, "bytes": n, "ranks": p, "median_s": t,
                                "num_servers": 1 if comm == "ps" else 0})
    path.write_text(json.dumps(records))
    return path


def test_a_fit_with_zero_coefficients_warns_and_writes_only_with_force(tmp_path):
    results, out = write_records(tmp_path / "r.json", LINK_ONLY), tmp_path / "profile.json"
    refused = CliRunner().invoke(bench, ["fit", str(results), "--out", str(out)])
    assert refused.exit_code != 0 and not out.exists()
    assert "warning: degenerate fit: alpha (latency per message) was fitted to 0" in refused.output
    assert "gamma (time to add a byte) was fitted to 0" in refused.output
    assert "not writing the profile" in str(refused.exception)
    forced = CliRunner().invoke(bench, ["fit", str(results), "--out", str(out), "--force"])
    assert forced.exit_code == 0, forced.output
    assert json.loads(out.read_text())["beta_s_per_byte"] == pytest.approx(8e-9)


def test_large_errors_and_infinite_bandwidth_are_problems():
    record = {"comm": "ps", "bytes": 4096, "ranks": 8}
    found = sanity.problems({"alpha_s": 1e-5, "beta_s_per_byte": 0.0, "gamma_s_per_byte": 1e-10},
                            [(record, 1.0, 0.45), (dict(record, comm="tree"), 1.0, -0.1)])
    assert found == ["beta (link time per byte) was fitted to 0: the model would make it free",
                     "the fitted bandwidth is infinite",
                     "1 of 2 points are off by more than 30% (worst 45%: ps, 4096 bytes, 8 ranks)"]


def test_a_sound_fit_has_no_problem_and_is_written(tmp_path):
    truth = {"alpha_s": 1e-4, "beta_s_per_byte": 8e-9, "gamma_s_per_byte": 1e-10}
    results, out = write_records(tmp_path / "r.json", truth), tmp_path / "profile.json"
    result = CliRunner().invoke(bench, ["fit", str(results), "--out", str(out)])
    assert result.exit_code == 0 and "warning" not in result.output and out.exists()


def test_one_process_points_are_neither_fitted_nor_counted_as_errors(tmp_path):
    # ps on 2 ranks has 1 worker, and bench comm times mpi on 1 rank beside it: nothing moves there
    truth = {"alpha_s": 1e-4, "beta_s_per_byte": 8e-9, "gamma_s_per_byte": 1e-10}
    results = write_records(tmp_path / "r.json", truth)
    records = json.loads(results.read_text()) + [
        {"version": 1, "comm": "mpi", "bytes": 2**20, "ranks": 1, "median_s": 1e-5, "num_servers": 0}]
    results.write_text(json.dumps(records))
    assert all(record["ranks"] > 1 for record, _, _ in model.errors(records, truth))
    result = CliRunner().invoke(bench, ["fit", str(results), "--out", str(tmp_path / "profile.json")])
    assert result.exit_code == 0 and "warning" not in result.output, result.output


def test_a_file_that_is_not_results_gets_one_line_and_no_traceback(tmp_path, capsys):
    picture = tmp_path / "scaling.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "fit", str(picture)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err == f"firecaffe: error: results file {picture} is not JSON (it holds binary data)\n"
