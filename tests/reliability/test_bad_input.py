"""Every file of tests/bad_input/ fails through the CLI with one clear line: the
file (and line, or the layer), exit status 1, no traceback."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from firecaffe import cli

REPO = Path(__file__).resolve().parents[2]
CORPUS = "tests/bad_input"

# file -> (command, expected fragment of the message)
CASES = {
    "syntax_error.prototxt": ("analyze", "syntax_error.prototxt:6:1"),
    "unknown_field.prototxt": ("analyze", "unknown_field.prototxt:4:37: Message type \"caffe.ConvolutionParameter\" "
                                          "has no field named \"kernal_size\""),
    "unknown_layer_type.prototxt": ("analyze", "unknown_layer_type.prototxt:3: layer 'conv': unknown layer type "
                                               "'Convolutoin'"),
    "missing_bottom.prototxt": ("analyze", "missing_bottom.prototxt:3: layer 'conv' (Convolution): unknown bottom "
                                           "blob 'dta'"),
    "cycle_later_output.prototxt": ("analyze", "cycle_later_output.prototxt:4: layer 'conv' (Convolution): unknown "
                                               "bottom blob 'ip'"),
    "top_reused.prototxt": ("analyze", "top_reused.prototxt:5: layer 'conv_again': top blob 'conv' is produced by "
                                       "an earlier layer too"),
    "shape_mismatch.prototxt": ("analyze", "shape_mismatch.prototxt:5: layer 'sum' (Eltwise): bottom[1] shape "
                                           "(2, 4, 6, 6) differs from bottom[0] shape (2, 1, 8, 8)"),
    "zero_kernel.prototxt": ("analyze", "zero_kernel.prototxt:3: layer 'conv' (Convolution): kernel size must be >= 1"),
    "zero_num_output.prototxt": ("analyze", "zero_num_output.prototxt:3: layer 'conv' (Convolution): "
                                            "convolution_param.num_output must be given and > 0"),
    "negative_pad.prototxt": ("analyze", "negative_pad.prototxt:4:57: "),
    "kernel_larger_than_input.prototxt": ("analyze", "kernel_larger_than_input.prototxt:3: layer 'conv' "
                                                     "(Convolution): output would be empty"),
    "huge_blob.prototxt": ("analyze", "huge_blob.prototxt:2: blob 'data' of shape 100000 1000 1000 1000 needs"),
    "too_many_axes.prototxt": ("analyze", "too_many_axes.prototxt:3: layer 'data': a shape of 33 axes; a blob has "
                                          "at most 32 (Caffe's kMaxBlobAxes)"),
    "huge_weights.prototxt": ("analyze", "huge_weights.prototxt:3:100: "),
    "binary_garbage.prototxt": ("analyze", "binary_garbage.prototxt: not a text file"),
    "empty.prototxt": ("train", "empty.prototxt: no net given"),
    "missing_h5.prototxt": ("train", "missing_h5.prototxt:2: layer 'data' (HDF5Data): tests/bad_input/missing_h5.txt: "
                                     "lists tests/bad_input/no_such_file.h5, which does not exist"),
    "text_as_h5.prototxt": ("train", "text_as_h5.prototxt:2: layer 'data' (HDF5Data): tests/bad_input/text_as_h5.h5: "
                                     "not a readable HDF5 file"),
    "truncated_h5.prototxt": ("train", "truncated_h5.prototxt:2: layer 'data' (HDF5Data): tests/bad_input/truncated.h5: "
                                       "not a readable HDF5 file (Unable to synchronously open file (truncated file"),
    "no_dataset.prototxt": ("train", "no_dataset.prototxt:2: layer 'data' (HDF5Data): tests/bad_input/no_dataset.h5: "
                                     "no dataset 'data' (the file holds: images, label)"),
    "label_out_of_range.prototxt": ("train", "layer 'loss' (SoftmaxWithLoss): label 12 of sample 3 in the batch is "
                                             "outside the 10 classes [0, 10) (that sample comes from "
                                             "tests/bad_input/label_out_of_range.h5, row 3)"),
    "solver_unknown_field.prototxt": ("train", "solver_unknown_field.prototxt:2:1: Message type "
                                               "\"caffe.SolverParameter\" has no field named \"base_lrr\""),
    "solver_syntax_error.prototxt": ("train", "solver_syntax_error.prototxt:2:15"),
    "solver_missing_net.prototxt": ("train", "tests/bad_input/solver_missing_net.prototxt: net: "
                                             "\"tests/bad_input/no_such_net.prototxt\": no such file (looked in "
                                             "the working directory "),
    "solver_negative_max_iter.prototxt": ("train", "solver_negative_max_iter.prototxt: max_iter is -5"),
    "solver_unknown_type.prototxt": ("train", "unknown solver type 'SGDD'"),
    "solver_bad_lr_policy.prototxt": ("train", "unknown lr_policy 'exponential'"),
}


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


def test_every_corpus_file_has_a_case():
    on_disk = {p.name for p in (REPO / CORPUS).glob("*.prototxt")}
    assert on_disk == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_fails_with_one_clear_line(name, capsys):
    command, fragment = CASES[name]
    bare_net = command == "train" and not name.startswith("solver_")
    args = [command, f"{CORPUS}/{name}"] + (["--max-iter", "2"] if bare_net else [])
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 1, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("firecaffe:")]
    assert len(lines) == 1, err
    assert fragment in lines[0], err


def test_the_real_command_line_prints_no_traceback():
    """One case end to end, through ``python -m firecaffe`` in a fresh process."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "firecaffe", "analyze", f"{CORPUS}/huge_blob.prototxt"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith("firecaffe: error: ") and "Traceback" not in done.stderr
    assert "GiB" in done.stderr
