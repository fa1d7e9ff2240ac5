"""Units, the bytes each strategy moves, and `analyze --workers` predictions."""
import json

import click
import pytest
from click.testing import CliRunner

from firecaffe.cli import prediction as prediction_cli
import firecaffe.insight.predict as predict
from firecaffe.comm import names
from firecaffe.errors import FirecaffeError

REPORT = {"name": "toy", "params": 1_000_000, "param_bytes": 4_000_000, "flops": 0, "layers": []}


@pytest.mark.parametrize("text, expected", [
    ("4096", 4096), ("4K", 4096), ("16M", 16 * 2**20), ("1.5G", 3 * 2**29), ("16MB", 16 * 2**20),
    ("16MiB", 16 * 2**20), ("64 k", 65536), ("2e3", 2000),
])
def test_parse_size(text, expected):
    assert predict.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "-4K", "0", "4X", "1.5", "K4", "4K,8K"])
def test_parse_size_refuses_nonsense(text):
    with pytest.raises(FirecaffeError, match="size"):
        predict.parse_size(text)


@pytest.mark.parametrize("text, expected", [
    ("2us", 2e-6), ("2 µs", 2e-6), ("0.5ms", 5e-4), ("1e-6s", 1e-6), ("3ns", 3e-9), ("0us", 0.0),
])
def test_parse_time(text, expected):
    assert predict.parse_time(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["2", "fast", "-2us", "2 parsecs", "us"])
def test_parse_time_refuses_nonsense(text):
    with pytest.raises(FirecaffeError, match="time"):
        predict.parse_time(text)


@pytest.mark.parametrize("text, expected", [
    ("10GB/s", 10e9), ("1.25 GB/s", 1.25e9), ("100Gb/s", 12.5e9), ("12GiB/s", 12 * 2**30),
    ("500MB/s", 5e8), ("10Gbps", 1.25e9), ("800B/s", 800),
])
def test_parse_bandwidth(text, expected):
    assert predict.parse_bandwidth(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["10", "10GB", "fast", "0GB/s", "-1GB/s", "10XB/s"])
def test_parse_bandwidth_refuses_nonsense(text):
    with pytest.raises(FirecaffeError, match="bandwidth"):
        predict.parse_bandwidth(text)


@pytest.mark.parametrize("text", ["", "0", "8,-2", "a,b"])
def test_parse_workers_refuses_nonsense(text):
    with pytest.raises(FirecaffeError, match="worker counts"):
        predict.parse_workers(text)


def test_add_prediction_speedup_on_a_10GBps_network():
    profile = predict.make_profile(bandwidth="10GB/s", latency="0us")
    report = predict.add_prediction(dict(REPORT), [1, 4], profile, compute_ms=100, comms=("ring",))
    one, four = report["predicted"]
    assert one["seconds"] == 0 and one["speedup"] == pytest.approx(1.0)
    # ring on 4: 2 * 3/4 * 4e6 bytes at 1e10 B/s = 0.6 ms; iteration 25 ms + 0.6 ms
    assert four["seconds"] == pytest.approx(6e-4)
    assert four["speedup"] == pytest.approx(0.1 / 0.0256)
    assert four["efficiency"] == pytest.approx(four["speedup"] / 4)
    assert {"comm", "workers", "seconds"} <= set(four)


def test_ps_is_predicted_slower_than_tree_at_128_workers():
    report = predict.add_prediction(dict(REPORT), [128], predict.make_profile())
    seconds = {r["comm"]: r["seconds"] for r in report["predicted"]}
    assert seconds["ps"] > 10 * seconds["tree"] > 10 * seconds["ring"]


def test_profile_file_is_loaded_and_overridden(tmp_path):
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({"alpha_s": 1e-5, "beta_s_per_byte": 1e-9, "gamma_s_per_byte": 1e-11}))
    profile = predict.make_profile(str(path), bandwidth="10GB/s")
    assert profile["alpha_s"] == 1e-5 and profile["beta_s_per_byte"] == pytest.approx(1e-10)
    path.write_text("{not json")
    with pytest.raises(FirecaffeError, match="not JSON"):
        predict.make_profile(str(path))
    with pytest.raises(FirecaffeError, match="cannot read profile"):
        predict.make_profile(str(tmp_path / "missing.json"))


def test_compute_ms_must_be_positive():
    with pytest.raises(FirecaffeError, match="compute-ms"):
        predict.add_prediction(dict(REPORT), [2], predict.make_profile(), compute_ms=0)


@click.command()
@prediction_cli.prediction_options
@click.option("--json", "as_json", is_flag=True)
def toy_analyze(as_json, **prediction):
    report = dict(REPORT)
    if prediction_cli.apply_prediction(report, **prediction) and not as_json:
        click.echo(predict.format_prediction(report))
    if as_json:
        click.echo(json.dumps(report))


def test_options_decorator_adds_predicted_records():
    result = CliRunner().invoke(toy_analyze, ["--workers", "32,128", "--bandwidth", "10GB/s",
                                              "--latency", "2us", "--compute-ms", "500", "--json"])
    assert result.exit_code == 0, result.output
    predicted = json.loads(result.output)["predicted"]
    assert {(r["comm"], r["workers"]) for r in predicted} == {
        (c, p) for c in names(default_only=True) for p in (32, 128)}
    text = CliRunner().invoke(toy_analyze, ["--workers", "32"]).output
    assert "speedup" not in text and "tree" in text and "10 GB/s" in text


def test_the_prediction_uses_the_tables_mib_and_says_its_units_once():
    report = predict.add_prediction(dict(REPORT), [4], predict.make_profile(), comms=("ring",))
    text = predict.format_prediction(report)
    first = text.splitlines()[0]
    assert first.startswith(f"gradient {REPORT['param_bytes'] / 2**20:,.3f} MiB per iteration")
    assert "reduction free" in first and "s/GB" not in text and " MB" not in text
    assert text.count("2^20") == 1 and "MiB/worker" in text
    fitted = dict(predict.make_profile(), gamma_s_per_byte=1e-10)
    assert "reduction 10 GB/s" in predict.format_prediction(predict.add_prediction(dict(REPORT), [4], fitted))


def test_prediction_options_without_workers_are_a_usage_error():
    result = CliRunner().invoke(toy_analyze, ["--bandwidth", "10GB/s"])
    assert result.exit_code == 2 and "--workers" in result.output


def test_compute_cores_caps_how_much_faster_the_compute_gets():
    profile = predict.make_profile(bandwidth="10GB/s", latency="0us")
    report = predict.add_prediction(dict(REPORT), [2, 8], profile, compute_ms=400, comms=("ring",),
                                    compute_cores=2)
    two, eight = report["predicted"]
    assert two["compute_s"] == pytest.approx(0.2) and eight["compute_s"] == pytest.approx(0.2)
    assert eight["iteration_s"] == pytest.approx(0.2 + eight["seconds"])
    with pytest.raises(FirecaffeError, match="compute-cores"):
        predict.add_prediction(dict(REPORT), [2], profile, compute_ms=1, compute_cores=0)


def test_fixed_ms_is_paid_by_every_worker_and_stretched_when_they_share_cores():
    profile = predict.make_profile(bandwidth="10GB/s", latency="0us")
    # 400 ms at the global batch, 40 of them fixed: 4 workers each run 360/4 + 40
    four, = predict.add_prediction(dict(REPORT), [4], profile, compute_ms=400, comms=("ring",),
                                   fixed_ms=40)["predicted"]
    assert four["compute_s"] == pytest.approx(0.130)
    # 8 workers on 2 cores: the batch part goes 2x faster, the fixed part of 8 workers takes 4x as long
    eight, = predict.add_prediction(dict(REPORT), [8], profile, compute_ms=400, comms=("ring",),
                                    fixed_ms=40, compute_cores=2)["predicted"]
    assert eight["compute_s"] == pytest.approx(0.180 + 0.160)
    plain, = predict.add_prediction(dict(REPORT), [8], profile, compute_ms=400, comms=("ring",),
                                    compute_cores=2)["predicted"]
    assert plain["compute_s"] == pytest.approx(0.2)


@pytest.mark.parametrize("fixed, compute", [(400, 400), (-1, 400), (10, None)])
def test_fixed_ms_outside_the_compute_is_refused(fixed, compute):
    with pytest.raises(FirecaffeError, match="--fixed-ms"):
        predict.add_prediction(dict(REPORT), [2], predict.make_profile(), compute_ms=compute, fixed_ms=fixed)


def test_a_codecs_cpu_time_stretches_when_ranks_share_cores():
    from firecaffe.insight.bench import codecs
    profile = dict(predict.make_profile(bandwidth="1GB/s", latency="0us"), delta_s_per_byte={"fp16": 1e-9})
    n = REPORT["param_bytes"]
    own, = predict.add_prediction(dict(REPORT), [8], profile, comms=("ring",), compress="fp16")["predicted"]
    shared, = predict.add_prediction(dict(REPORT), [8], profile, comms=("ring",), compress="fp16",
                                     compute_cores=2)["predicted"]
    delta_part = codecs.coefficients("ring", n, 8, compress="fp16")[3] * 1e-9
    assert shared["seconds"] - own["seconds"] == pytest.approx(3 * delta_part)      # 8 ranks on 2 cores: 4x


def test_ppn_puts_hier_among_node_leaders():
    profile = predict.make_profile(bandwidth="1GB/s", latency="0us")
    flat = predict.add_prediction(dict(REPORT), [8], profile, comms=("hier",))["predicted"][0]
    nodes = predict.add_prediction(dict(REPORT), [8], profile, comms=("hier",), ranks_per_node=2)["predicted"][0]
    # a tree among 4 node leaders (L = 2) instead of among 8 ranks (L = 3), with 128 KiB chunks either way
    assert nodes["seconds"] == pytest.approx(flat["seconds"] * 2 / 3, rel=0.02)
