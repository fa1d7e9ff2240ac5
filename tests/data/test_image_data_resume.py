"""Training on ImageData resumes exactly from a snapshot (read position, shuffle
seed and the random crops/mirrors after it)."""
import numpy as np
from PIL import Image

from firecaffe.solvers import Solver

NET = """
name: "tiny"
layer {{ name: "data" type: "ImageData" top: "data" top: "label"
  image_data_param {{ source: "{folder}/list.txt" root_folder: "{folder}/" batch_size: 3 shuffle: true }}
  transform_param {{ crop_size: 6 mirror: true scale: 0.01 }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param {{ num_output: 4 weight_filler {{ type: "gaussian" std: 0.1 }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }}
"""

SOLVER = """
net: "{folder}/net.prototxt"
base_lr: 0.1 lr_policy: "fixed" max_iter: 6 snapshot: 3 snapshot_prefix: "{prefix}"
display: 0 random_seed: 5
"""


def make(folder, prefix):
    from google.protobuf import text_format
    from firecaffe.proto import caffe_pb2
    param = text_format.Parse(SOLVER.format(folder=folder, prefix=prefix), caffe_pb2.SolverParameter())
    return Solver(param)


def test_resume_from_a_snapshot_continues_exactly(tmp_path):
    gen = np.random.default_rng(0)
    lines = []
    for k in range(7):
        Image.fromarray(gen.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / f"i{k}.png")
        lines.append(f"i{k}.png {k % 4}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "net.prototxt").write_text(NET.format(folder=tmp_path))
    whole = make(tmp_path, tmp_path / "whole")
    whole.solve()
    resumed = make(tmp_path, tmp_path / "resumed")
    resumed.solve(f"{tmp_path}/whole_iter_3.solverstate")
    np.testing.assert_array_equal(resumed.net.param_arena, whole.net.param_arena)
