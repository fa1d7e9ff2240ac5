"""caffe.draw: DOT text always; images through Graphviz, or a clear error without it."""
import shutil

import pytest

import firecaffe as caffe
from firecaffe import draw
from firecaffe.errors import FirecaffeError
from firecaffe.proto import io
from tests import _required

LENET = "nets/lenet_digits/train_test.prototxt"


def test_dot_has_every_layer_and_in_place_blobs_as_new_nodes():
    text = draw.net_to_dot(io.read_net(LENET), phase=caffe.TRAIN)
    assert text.startswith('digraph "LeNetDigits"')
    for name in ("digits", "conv1", "relu1", "pool1", "ip2", "loss"):
        assert f'"layer:' in text and f':{name}"' in text
    assert '"blob:conv1:0"' in text and '"blob:conv1:1"' in text          # before and after relu1
    assert text.count("(HDF5Data)") == 1 and "(Accuracy)" not in text      # TEST-only layers filtered


def test_both_phases_without_a_phase():
    text = draw.net_to_dot(LENET)
    assert text.count("(HDF5Data)") == 2 and "(Accuracy)" in text


def test_draw_net_to_dot_file(tmp_path):
    draw.draw_net_to_file(io.read_net(LENET), str(tmp_path / "lenet.dot"), rankdir="TB")
    assert "rankdir=TB;" in (tmp_path / "lenet.dot").read_text()


def test_png_and_svg_through_graphviz(tmp_path):
    if shutil.which("dot") is None:
        _required.missing("Graphviz's dot is not installed (apt-get install graphviz)")
    draw.draw_net_to_file(io.read_net(LENET), str(tmp_path / "lenet.png"))
    assert (tmp_path / "lenet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in draw.draw_net(LENET, ext="svg")


def test_without_graphviz_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(FirecaffeError, match="apt install graphviz"):
        draw.draw_net(LENET, ext="png")


def test_command_line(tmp_path):
    assert draw.main([LENET, str(tmp_path / "net.dot"), "--phase", "TEST"]) == 0
    assert "(Accuracy)" in (tmp_path / "net.dot").read_text()
