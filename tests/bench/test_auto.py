"""`--comm auto`'s chooser (insight/auto.py): it picks what the model predicts fastest, breaks ties
in a fixed order, models buckets against backward, and refuses bad or foreign profiles in one line."""
import json

import pytest

from firecaffe.errors import FirecaffeError
from firecaffe.insight import auto
from firecaffe.insight.bench import model

LINKS = {"alpha_s": 5e-6, "beta_s_per_byte": 8e-8, "gamma_s_per_byte": 3e-10}       # 100 Mb/s-like
LATENCY_BOUND = {"alpha_s": 1e-2, "beta_s_per_byte": 1e-12, "gamma_s_per_byte": 0.0}


def best(configs, n, ranks, profile, **kw):
    return auto.rank(configs, n, ranks, profile, **kw)[0]


@pytest.mark.parametrize("n, ranks, profile", [
    (2916136, 8, LINKS), (243860896, 4, LINKS), (4096, 16, LATENCY_BOUND), (2916136, 5, LINKS)])
def test_choice_is_the_candidate_with_the_smallest_prediction(n, ranks, profile):
    configs = auto.candidates(ranks)
    times = {c.comm: model.predict(c.comm, n, ranks, profile) for c in configs}
    chosen = best(configs, n, ranks, profile)
    assert chosen.exposed_s == min(times.values())
    assert times[chosen.candidate.comm] == min(times.values())


def test_bandwidth_bound_links_choose_a_bandwidth_optimal_algorithm_and_latency_bound_ones_a_tree():
    # 64 MiB: a ring's or Rabenseifner's 2(p-1)/p n on a link, not a binomial tree's 2 L n
    assert best(auto.candidates(8), 2**26, 8, LINKS).candidate.comm in ("ring", "mpi")
    # 16 ranks, one tiny message: the ring's 30 latency steps against the trees' few
    assert best(auto.candidates(16), 4096, 16, LATENCY_BOUND).candidate.comm in ("tree", "dbtree", "mpi")
    assert best(auto.candidates(16), 4096, 16, LATENCY_BOUND).exposed_s < model.predict(
        "ring", 4096, 16, LATENCY_BOUND)


def test_ties_go_to_the_earlier_candidate():
    # without latency, ring and mpi cost the same on a power of two: the candidates' order decides
    links = dict(LINKS, alpha_s=0.0)
    configs = auto.candidates(8, comms=("mpi", "ring"))
    ranked = auto.rank(configs, 2**24, 8, links)
    assert ranked[0].iteration_s == ranked[1].iteration_s
    assert ranked[0].candidate == configs[0]
    assert auto.rank(list(reversed(configs)), 2**24, 8, links)[0].candidate == configs[-1]


def test_candidates_leave_out_servers_gpus_and_hier_on_one_node():
    names = {c.comm for c in auto.candidates(8)}
    assert "ps" not in names and "nccl" not in names and "hier" not in names
    assert "hier" in {c.comm for c in auto.candidates(8, ranks_per_node=2)}
    assert "hier" not in {c.comm for c in auto.candidates(4, ranks_per_node=4)}     # one node
    assert "nccl" in {c.comm for c in auto.candidates(8, gpu=True)}


def test_bucket_candidates_skip_whole_gradient_buckets_and_strategies_that_do_not_overlap():
    configs = auto.candidates(4, comms=("ring", "ps"), buckets=(0.0, 1.0, 4.0), n=3 * 2**20)
    assert [(c.comm, c.bucket_mb) for c in configs] == [("ring", 0.0), ("ring", 1.0), ("ps", 0.0)]


def test_buckets_hide_what_backward_covers():
    # 4 buckets of 1 s each on a 10 s backward: only the last one (ready at its end) is exposed
    total, exposed = auto.exposed([(1.0, 0.25)] * 4, backward_s=10.0)
    assert (total, exposed) == (4.0, 1.0)
    # no backward to hide behind: all of it
    assert auto.exposed([(1.0, 0.25)] * 4, backward_s=0.0) == (4.0, 4.0)
    # the reduction is slower than backward: the queue spills over
    assert auto.exposed([(2.0, 0.5)] * 2, backward_s=2.0) == (4.0, pytest.approx(3.0))


def test_buckets_win_with_long_compute_and_lose_without():
    configs = auto.candidates(4, comms=("ring",), buckets=(0.0, 1.0), n=2**23)
    assert best(configs, 2**23, 4, LINKS, compute_s=10.0).candidate.bucket_mb == 1.0
    assert best(configs, 2**23, 4, LINKS, compute_s=0.0).candidate.bucket_mb == 0.0


def test_compressed_candidates_are_predicted_with_their_delta():
    profile = dict(LINKS, delta_s_per_byte={"fp16": 1e-10})
    configs = auto.candidates(8, comms=("ring",), compress=("none", "fp16"))
    chosen = best(configs, 2**24, 8, profile)
    assert chosen.candidate.compress == "fp16"
    slow_codec = dict(LINKS, delta_s_per_byte={"fp16": 1e-6})       # encoding costs more than the wire saves
    assert best(configs, 2**24, 8, slow_codec).candidate.compress == "none"


def test_description_names_the_choice_and_the_runner_up():
    ranked = auto.rank(auto.candidates(8), 2**24, 8, LINKS, compute_s=0.1)
    lines = auto.describe_choice(ranked, 2**24, 8, 1, "profile p.json")
    assert lines[0].startswith(f"--comm auto: {ranked[0].candidate.comm}, no buckets")
    assert "predicted iteration" in lines[0] and "runner-up" in lines[1]


def write(tmp_path, content):
    path = tmp_path / "profile.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


@pytest.mark.parametrize("content, needle", [
    ("{not json", "is not JSON"),
    ({"alpha_s": 1e-6}, "missing beta_s_per_byte, gamma_s_per_byte"),
    (dict(LINKS, beta_s_per_byte=-1), "beta_s_per_byte must be a non-negative number"),
    (dict(LINKS, delta_s_per_byte={"zip": 1e-9}), "delta_s_per_byte['zip']"),
    (dict(LINKS, machine="sparc64 UltraSPARC"), "was measured on 'sparc64 UltraSPARC'"),
])
def test_bad_profiles_are_refused_in_one_line(tmp_path, content, needle):
    with pytest.raises(FirecaffeError) as error:
        auto.AutoChooser(write(tmp_path, content))
    assert needle in str(error.value) and "\n" not in str(error.value)


def test_a_profile_of_this_machine_kind_or_of_none_is_taken(tmp_path):
    assert auto.AutoChooser(write(tmp_path, dict(LINKS, machine=model.machine_kind()))).profile is not None
    assert auto.AutoChooser(write(tmp_path, LINKS)).profile["alpha_s"] == LINKS["alpha_s"]


def test_compression_asked_of_a_profile_without_its_delta_is_refused(tmp_path):
    with pytest.raises(FirecaffeError, match="no delta for --compress int8"):
        auto.AutoChooser(write(tmp_path, LINKS), compress=("none", "int8"))


TIMED_NET = """
name: "timed"
layer { name: "data" type: "DummyData" top: "data" top: "label"
        dummy_data_param { shape { dim: 4 dim: 3 dim: 8 dim: 8 } shape { dim: 4 }
                           data_filler { type: "gaussian" } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" } } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
layer { name: "drop" type: "Dropout" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def test_timing_the_net_leaves_weights_gradients_and_random_stream_as_they_were():
    import numpy as np
    from google.protobuf import text_format

    from firecaffe.core import backend
    from firecaffe.engine.net import Net
    from firecaffe.insight.bench import probe
    from firecaffe.proto import caffe_pb2
    backend.seed(3)
    net = Net(text_format.Parse(TIMED_NET, caffe_pb2.NetParameter()), phase="TRAIN")
    net.diff_arena[...] = 0.5
    params, diff = net.param_arena.copy(), net.diff_arena.copy()
    state = backend.rng().bit_generator.state
    seconds = probe.forward_backward_s(net)
    assert seconds is not None and seconds > 0
    np.testing.assert_array_equal(net.param_arena, params)       # BatchNorm's running statistics too
    np.testing.assert_array_equal(net.diff_arena, diff)
    assert backend.rng().bit_generator.state == state           # Dropout's masks come out the same


def test_compressed_candidates_only_where_the_strategy_can_send_them():
    pairs = {(c.comm, c.compress) for c in auto.candidates(8, compress=("none", "fp16", "powersgd:2"))}
    assert ("ring", "fp16") in pairs and ("mpi", "powersgd:2") in pairs
    assert ("mpi", "fp16") not in pairs          # MPI's Allreduce adds float32, not fp16 messages


def test_the_probe_measures_add_compute_and_codec_rates_on_one_process():
    mpi = pytest.importorskip("mpi4py.MPI")
    from firecaffe.insight.bench import probe
    profile = probe.measure(mpi.COMM_SELF, ("none", "fp16", "powersgd:2"))
    assert profile["gamma_s_per_byte"] > 0 and profile["flops_per_s"] > 0
    assert set(profile["delta_s_per_byte"]) == {"fp16", "powersgd"}
    assert all(value > 0 for value in profile["delta_s_per_byte"].values())
    assert model.check_profile(dict(profile, beta_s_per_byte=1e-9))     # a profile the model takes
