"""The lossy stages on weights alone: per-layer specs, pruning by density and by quality, an
iterative schedule, k-means sharing in place."""
import numpy as np
import pytest

from firecaffe.compress import pipeline, prune
from firecaffe.compress.spec import Plan
from firecaffe.errors import FirecaffeError

KINDS = {"conv1": "Convolution", "conv2": "Convolution", "ip1": "InnerProduct", "relu": "ReLU"}


def weights(seed=0):
    gen = np.random.default_rng(seed)
    return pipeline.Weights("n", [("conv1", "Convolution", [gen.normal(size=(8, 3, 3, 3)), np.ones(8)]),
                                  ("conv2", "Convolution", [gen.normal(size=(16, 8, 3, 3)), np.ones(16)]),
                                  ("ip1", "InnerProduct", [gen.normal(size=(10, 400)), np.ones(10)])])


def test_specs_apply_in_order_and_default_bits_follow_the_paper():
    plan = Plan(KINDS, density_text="0.5,conv*:0.3,conv2:0.2", bits_text="ip1:3")
    assert plan.layers == ["conv1", "conv2", "ip1"]                 # ReLU has nothing to compress
    assert plan.density == {"conv1": 0.3, "conv2": 0.2, "ip1": 0.5}
    assert plan.bits == {"conv1": 8, "conv2": 8, "ip1": 3}
    with pytest.raises(FirecaffeError, match="both --density and --quality"):
        Plan(KINDS, density_text="conv1:0.5", quality_text="conv*:1")


def test_density_keeps_the_largest_magnitudes():
    w = np.array([[0.1, -3.0, 0.5], [2.0, -0.2, 0.0]], np.float32)
    np.testing.assert_array_equal(prune.mask_by_density(w, 0.5), [[False, True, True], [True, False, False]])
    np.testing.assert_array_equal(prune.mask_by_quality(w, 1.0), np.abs(w) > w.std())


def test_a_schedule_prunes_further_at_each_step():
    w = weights()
    plan = Plan(w.kinds(), density_text="0.25", quality_text=None)
    kept = []
    for step in (1, 2):
        masks = pipeline.prune_step(w, plan, step / 2)
        kept.append({name: float(mask.mean()) for name, mask in masks.items()})
    assert kept[0]["ip1"] == pytest.approx(0.5, abs=1e-3) and kept[1]["ip1"] == pytest.approx(0.25, abs=1e-3)
    second = masks
    assert all(np.all(w.weight(name)[~mask] == 0) for name, mask in second.items())
    assert np.all(w.layers[0][2][1] == 1)                           # biases are not pruned


def test_sharing_leaves_at_most_two_to_the_bits_values_and_zeros_alone():
    w = weights(1)
    plan = Plan(w.kinds(), density_text="ip1:0.3", bits_text="ip1:2,conv*:3")
    pipeline.prune_step(w, plan)
    shared = pipeline.quantize_step(w, plan)
    ip1 = w.weight("ip1")
    assert np.mean(ip1 != 0) == pytest.approx(0.3, abs=1e-3)
    assert np.unique(ip1[ip1 != 0]).size <= 3                        # 2**2 codes, one the zero
    assert np.unique(w.weight("conv1")).size <= 8                    # unpruned: all 2**3 are values
    codebook, kept, codes = shared["ip1"]
    np.testing.assert_array_equal(ip1.reshape(-1)[kept], codebook[codes])
