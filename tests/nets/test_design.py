"""`firecaffe design squeezenet`: the SqueezeNet paper's metaparameters to prototxt,
measured by the engine."""
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from google.protobuf import text_format

import firecaffe
import firecaffe.insight.design as design
from firecaffe.cli.design import design as design_cli, parse_sweep
from firecaffe.insight.design import SqueezeNetSpec, describe
from firecaffe.errors import FirecaffeError
from firecaffe.proto import caffe_pb2

ROOT = Path(__file__).resolve().parents[2]

# SqueezeNet v1.0 (Iandola et al. 2016, table 1): squeeze, expand 1x1, expand 3x3 of fire2..fire9.
V1_0_TABLE = [("fire2", 16, 64, 64), ("fire3", 16, 64, 64), ("fire4", 32, 128, 128), ("fire5", 32, 128, 128),
              ("fire6", 48, 192, 192), ("fire7", 48, 192, 192), ("fire8", 64, 256, 256), ("fire9", 64, 256, 256)]


def test_default_metaparameters_give_squeezenet_v1_0():
    info = describe(SqueezeNetSpec())
    assert info["schedule"] == V1_0_TABLE
    assert info["params"] == 1_248_424
    assert info["paper_mb"] == 4.8


def test_v1_1_is_the_same_modules_with_a_small_conv1_and_earlier_pooling():
    assert describe(design.SQUEEZENET_V1_1)["params"] == 1_235_496


def test_default_deploy_is_the_committed_v1_0_net_layer_for_layer():
    def layers(text):
        return [l.SerializeToString() for l in text_format.Parse(text, caffe_pb2.NetParameter()).layer]
    written = design.build_squeezenet(SqueezeNetSpec(), train=False).text()
    assert layers(written) == layers((ROOT / "nets/squeezenet_v1.0/deploy.prototxt").read_text())


@pytest.mark.parametrize("sr,paper_mb", [(0.125, 4.8), (0.75, 19)])
def test_squeeze_ratio_sweep_sizes_match_the_paper(sr, paper_mb):
    """Figure 2(a) of the paper: 4.8MB at SR 0.125 up to 19MB at SR 0.75."""
    assert describe(SqueezeNetSpec(sr=sr))["paper_mb"] == paper_mb


@pytest.mark.parametrize("pct,paper_mb", [(0.01, 5.7), (0.5, 13), (0.99, 21)])
def test_pct_3x3_sweep_sizes_match_the_paper(pct, paper_mb):
    """Figure 2(b) of the paper, which holds SR at 0.5: 5.7MB at 1% 3x3 filters, 21MB at 99%."""
    assert describe(SqueezeNetSpec(sr=0.5, pct_3x3=pct))["paper_mb"] == paper_mb


def test_paper_mb_rounds_up_to_two_significant_digits():
    assert design.paper_mb(60_965_224) == 240         # AlexNet: "240MB" in the paper's table 2
    assert design.paper_mb(1_248_424) == 4.8


@pytest.mark.parametrize("changes,message", [
    ({"sr": 1.5}, "SR"), ({"sr": 0.0}, "SR"), ({"sr": -0.125}, "SR"),
    ({"pct_3x3": -0.1}, "pct_3x3"), ({"pct_3x3": 1.01}, "pct_3x3"),
    ({"pool_after": (4, 12)}, "fire12"), ({"pool_after": (1,)}, "fire1"), ({"freq": 0}, "freq"),
    ({"filler": "gaussian"}, "filler"),
])
def test_bad_metaparameters_raise_a_clear_error(changes, message):
    with pytest.raises(FirecaffeError, match=message):
        describe(SqueezeNetSpec(**changes))


def test_msra_filler_for_every_convolution():
    """The paper's fillers (xavier, conv10 gaussian 0.01) by default; filler="msra" (squeezenet_cifar's)
    puts msra on all 26 convolutions, conv10 included."""
    paper = design.build_squeezenet(SqueezeNetSpec(), train=True).text()
    msra = design.build_squeezenet(SqueezeNetSpec(filler="msra"), train=True).text()
    assert paper.count('type: "xavier"') == 25 and 'std: 0.01' in paper and "msra" not in paper
    assert msra.count('type: "msra"') == 26 and "xavier" not in msra and "std: 0.01" not in msra


def test_pct_3x3_at_the_ends_drops_one_expand_branch():
    all_1x1 = design.build_squeezenet(SqueezeNetSpec(pct_3x3=0.0), train=False).text()
    assert "expand3x3" not in all_1x1 and "Concat" not in all_1x1
    assert "expand1x1" not in design.build_squeezenet(SqueezeNetSpec(pct_3x3=1.0), train=False).text()


def test_simple_bypass_adds_no_parameters():
    b = design.build_squeezenet(SqueezeNetSpec(bypass=True), train=False)
    assert b.params == 1_248_424
    assert re.findall(r'name: "(fire\d)/bypass"', b.text()) == ["fire3", "fire5", "fire7", "fire9"]


def test_parse_sweep_includes_the_stop_value():
    assert parse_sweep("sr=0.125:1.0:0.125") == ("sr", [0.125 * k for k in range(1, 9)])
    assert parse_sweep("pct_3x3=0.01,0.5,0.99") == ("pct_3x3", [0.01, 0.5, 0.99])
    assert parse_sweep("base_e=64:128:64") == ("base_e", [64, 128])


def test_cli_writes_v1_0_that_the_engine_counts(tmp_path):
    result = CliRunner().invoke(design_cli, ["squeezenet", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "1,248,424" in result.output and "4.8MB" in result.output
    assert "model size: 4.76 MiB float32" in result.output and "2**20" not in result.output
    for name in ("train_val.prototxt", "deploy.prototxt", "solver.prototxt"):
        assert (tmp_path / name).exists()
    net = firecaffe.Net(str(tmp_path / "deploy.prototxt"), phase="TEST")
    assert sum(b.data.size for blobs in net.params.values() for b in blobs) == 1_248_424


def test_cli_sweep_writes_one_folder_per_value_and_a_size_table(tmp_path):
    result = CliRunner().invoke(design_cli, ["squeezenet", "--out", str(tmp_path), "--sweep", "sr=0.125:1.0:0.125"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"sr_{0.125 * k:g}" for k in range(1, 9))
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[1:]}
    assert rows["0.125"][3] == "4.8" and rows["0.75"][3] == "19"       # the "paper MB" column


def test_cli_rejects_a_bad_squeeze_ratio_before_writing(tmp_path):
    result = CliRunner().invoke(design_cli, ["squeezenet", "--out", str(tmp_path / "x"), "--sr", "1.5"])
    assert result.exit_code != 0
    assert isinstance(result.exception, FirecaffeError) and "SR" in str(result.exception)
    assert not (tmp_path / "x").exists()


def test_cli_rejects_a_malformed_sweep():
    result = CliRunner().invoke(design_cli, ["squeezenet", "--sweep", "size=1:2:1"])
    assert result.exit_code == 2 and "NAME" in result.output


def test_an_input_too_small_for_the_pooling_is_refused_before_writing(tmp_path):
    with pytest.raises(FirecaffeError, match="pool8"):
        design.write_squeezenet(SqueezeNetSpec(input_size=16), str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()


def test_builder_reads_shapes_and_counts_from_the_engine():
    b = design.NetBuilder("toy", train=False)
    b.input((1, 3, 32, 32))
    x = b.relu("relu1", b.conv("conv1", "data", 8, 3, pad=1))
    assert b.shape(x) == (8, 32, 32)
    x = b.pool("pool1", x, "MAX", 3, 2)
    assert b.shape(x) == (8, 16, 16)                  # Caffe's pooling rounds up: ceil(29 / 2) + 1
    b.classifier_head(b.fc("fc", x, 10))
    assert b.params == (8 * 3 * 9 + 8) + (8 * 16 * 16 * 10 + 10)
    assert b.macs == 8 * 3 * 9 * 32 * 32 + 8 * 16 * 16 * 10
    assert b.flops == firecaffe_analyze_flops(b.text())


def firecaffe_analyze_flops(text):
    from firecaffe.insight.analysis import analyze
    net = firecaffe.Net(text_format.Parse(text, caffe_pb2.NetParameter()), phase="TEST")
    return analyze(net)["flops_per_image"]


def test_a_layer_the_engine_refuses_is_named_when_measured():
    b = design.NetBuilder("toy", train=False)
    b.input((1, 3, 32, 32))
    b.conv("conv1", "data", 10, 3, group=4)
    with pytest.raises(FirecaffeError, match=r"toy \(deploy\): layer 'conv1'.*group 4"):
        b.params


def test_train_val_is_measured_with_an_input_in_place_of_its_data_layers():
    b = design.build_squeezenet(SqueezeNetSpec(), train=True)
    assert [layer.type for layer in b.net().layers[:1]] == ["Input"]
    assert b.params == 1_248_424 and b.shape("pool10") == (1000, 1, 1)


def test_bypass_goes_around_the_modules_the_engine_finds_keep_their_shape():
    assert design.bypassed_modules(SqueezeNetSpec(bypass=True)) == ("fire3", "fire5", "fire7", "fire9")
    # base_e 128 with incr_e 0: every module has 128 outputs, so all but fire2 (96 inputs) keep their shape
    assert design.bypassed_modules(SqueezeNetSpec(bypass=True, incr_e=0)) == tuple(f"fire{n}" for n in range(3, 10))


def test_solver_mode_is_written_only_when_asked(tmp_path):
    def mode(*args):
        out = tmp_path / "_".join(args or ("default",))
        result = CliRunner().invoke(design_cli, ["squeezenet", "--out", str(out), *args])
        assert result.exit_code == 0, result.output
        solver = text_format.Parse((out / "solver.prototxt").read_text(), caffe_pb2.SolverParameter())
        return caffe_pb2.SolverParameter.SolverMode.Name(solver.solver_mode) if solver.HasField("solver_mode") else None
    assert mode() is None
    assert mode("--solver-mode", "gpu") == "GPU"
    assert mode("--solver-mode", "CPU") == "CPU"


def test_cli_prints_the_flops_firecaffe_analyze_counts(tmp_path):
    result = CliRunner().invoke(design_cli, ["squeezenet", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    flops = firecaffe_analyze_flops((tmp_path / "deploy.prototxt").read_text())
    assert f"{flops / 1e9:.3f} GFLOPs per image" in result.output
