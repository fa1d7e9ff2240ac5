"""Cost formulas against hand-computed values, and the fit against data made by the model itself."""
import math

import numpy as np
import pytest

from firecaffe.comm import names
from firecaffe.insight.bench import model
from firecaffe.errors import FirecaffeError

PROFILE = {"alpha_s": 1e-6, "beta_s_per_byte": 1e-9, "gamma_s_per_byte": 1e-10}


@pytest.mark.parametrize("comm, n, p, servers, expected", [
    ("tree", 1000, 8, 1, (6, 6000, 3000)),         # L = 3, one chunk: 2L(a + n b) + L n g
    ("tree", 1000, 5, 1, (6, 6000, 3000)),         # L = ceil(log2 5) = 3
    ("tree", 1000, 2, 1, (2, 2000, 1000)),
    ("ring", 1000, 4, 1, (6, 1500, 750)),          # 2(p-1) a + 2(p-1)/p n b + (p-1)/p n g
    ("mpi", 1000, 8, 1, (6, 1750, 875)),           # 2 log2 p a + 2(p-1)/p n b + (p-1)/p n g
    ("ps", 1000, 4, 2, (8, 4000, 1500)),           # 2W a + 2 W/S n b + (W-1) n/S g
    ("ps", 1000, 1, 1, (2, 2000, 0)),              # one worker still talks to its server
    ("ps", 1000, 2, 4, (8, 2000, 250)),            # more servers than workers: the worker's link
    ("ring", 1000, 1, 1, (0, 0, 0)),
])
def test_coefficients_match_hand_computed_values(comm, n, p, servers, expected):
    assert model.coefficients(comm, n, p, servers) == pytest.approx(expected)


def test_predict_combines_the_three_constants():
    # tree, 1000 bytes, 8 ranks: 6 us + 6 us + 0.3 us
    assert model.predict("tree", 1000, 8, PROFILE) == pytest.approx(12.3e-6)
    assert model.predict("ps", 1000, 4, PROFILE, servers=2) == pytest.approx(8e-6 + 4e-6 + 0.15e-6)


def test_tree_cost_is_the_pipelined_tree_one_root_cycle_per_chunk_plus_the_last_way_down():
    # 2 ranks, 4 chunks of 1 MiB: the root takes a chunk in while the previous one goes back (4 cycles),
    # then sends the last one down: 5 latencies, 5 MiB over its link, 4 MiB added.
    assert model.coefficients("tree", 4 * 2**20, 2, chunk_bytes=2**20) == (5, 5 * 2**20, 4 * 2**20)
    # 8 ranks (L = 3), 2.5 chunks: 3 cycles of 3 chunks at the root, then 3 sends of the half chunk.
    assert model.coefficients("tree", 5 * 2**19, 8, chunk_bytes=2**20) == (12, 3 * (5 * 2**19 + 2**19),
                                                                           3 * 5 * 2**19)
    # The default chunk is the one the running tree uses: 512 KiB when all ranks share one node's
    # memory, 128 KiB when the tree spans nodes (one rank per node unless the layout says otherwise).
    from firecaffe.comm.topology import pipeline_chunk_bytes
    assert pipeline_chunk_bytes(False) == 512 * 1024 and pipeline_chunk_bytes(True) == 128 * 1024
    assert model.coefficients("tree", 2**20, 2, ranks_per_node=2) == (3, 2**20 + 2**19, 2**20)
    assert model.coefficients("tree", 2**20, 2) == (9, 2**20 + 2**17, 2**20)
    assert model.coefficients("tree", 2**20, 4, ranks_per_node=2) == (18, 2 * (2**20 + 2**17), 2 * 2**20)


def test_the_ring_streams_its_segments_in_chunks_across_nodes_and_steps_through_them_on_one():
    n = 64 * 2**20          # 4 ranks: 16 MiB segments, 128 chunks of 128 KiB each, in each of 6 steps
    assert model.coefficients("ring", n, 4) == (6 * 128, 1.5 * n, 0.75 * n)
    assert model.coefficients("ring", n, 4, ranks_per_node=4) == (6, 1.5 * n, 0.75 * n)
    assert model.coefficients("ring", n, 4, chunk_bytes=2**22) == (6 * 4, 1.5 * n, 0.75 * n)


def test_ps_grows_linearly_and_tree_logarithmically_in_bandwidth_term():
    n = 2**26
    assert model.coefficients("ps", n, 64)[1] / model.coefficients("ps", n, 8)[1] == 8
    assert model.coefficients("tree", n, 64)[1] / model.coefficients("tree", n, 8)[1] == 2


def test_unknown_strategy_and_nonsense_sizes_are_refused():
    with pytest.raises(FirecaffeError, match="no cost model"):
        model.coefficients("gossip", 10, 4)
    with pytest.raises(FirecaffeError, match="p >= 1"):
        model.coefficients("ring", 10, 0)
    with pytest.raises(FirecaffeError, match="at least 1 server"):
        model.coefficients("ps", 10, 4, servers=0)


@pytest.mark.parametrize("comm, n, p, servers, expected", [
    ("tree", 1000, 8, 1, (6, 6000, 3000)),         # the root: L children up, L down, L adds
    ("ring", 1000, 4, 1, (6, 3000, 750)),          # 2(p-1)/p n out and as much in
    ("mpi", 1000, 8, 1, (6, 3500, 875)),
    ("mpi", 1000, 9, 1, (8, 5500, 1875)),          # q = 8 folds the 9th in: 2n + 4(7/8)n, n + (7/8)n
    ("ps", 1000, 4, 2, (8, 4000, 1500)),           # a server: W pushes in, W pulls out of n/S
    ("ring", 1000, 1, 1, (0, 0, 0)),
])
def test_busiest_rank_matches_hand_computed_values(comm, n, p, servers, expected):
    assert model.busiest_rank(comm, n, p, servers) == pytest.approx(expected)


@pytest.mark.parametrize("comm, n, p, servers, expected", [
    ("tree", 1000, 8, 1, (14, 14000, 7000)),       # every non-root sends n up and gets n down
    ("ring", 1000, 4, 1, (24, 6000, 3000)),
    ("mpi", 1000, 8, 1, (48, 14000, 7000)),
    ("ps", 1000, 4, 2, (16, 8000, 3000)),          # each worker pushes n and pulls n
])
def test_totals_match_hand_computed_values(comm, n, p, servers, expected):
    assert model.totals(comm, n, p, servers) == pytest.approx(expected)


def test_traffic_per_strategy():
    n = 1000
    assert model.traffic("tree", n, 8) == (3500, 14000, 6000)     # root: 3 levels in and out
    assert model.traffic("ring", n, 8) == (3500, 14000, 3500)
    assert model.traffic("mpi", n, 8) == (3500, 14000, 3500)
    assert model.traffic("mpi", n, 9) == pytest.approx((32000 / 9, 16000, 5500))  # the folding ranks
    assert model.traffic("ps", n, 8, servers=2) == (2000, 16000, 8000)
    assert model.traffic("ps", n, 1) == (2000, 2000, 2000)      # one worker still talks to its server
    assert model.traffic("tree", n, 1) == (0, 0, 0)


@pytest.mark.parametrize("comm", names())
@pytest.mark.parametrize("p", [2, 3, 4, 7, 8, 9, 16])
def test_busiest_rank_bounds_the_work_spread_over_all_cores(comm, p):
    # P x busiest >= all ranks' work (2 copies per byte sent) term by term, so (P/C) x busiest is the
    # contended time and the total-work bound never decides.
    busiest, total = model.busiest_rank(comm, 2**20, p, 2), model.totals(comm, 2**20, p, 2)
    procs = model.processes(comm, p, 2)
    for mine, all_, copies in zip(busiest, total, (1, 2, 1)):
        assert procs * mine >= copies * all_ - 1e-6


def test_contention_applies_only_when_processes_outnumber_cores():
    assert model.terms("ring", 1000, 2, cores=2) == model.coefficients("ring", 1000, 2)
    assert model.terms("ring", 1000, 4, cores=None) == model.coefficients("ring", 1000, 4)
    assert model.terms("ring", 1000, 4, cores=2) == pytest.approx((12, 6000, 1500))  # 4/2 x busiest
    assert model.terms("ps", 1000, 2, servers=1, cores=2) == pytest.approx((6, 6000, 1500))  # 3/2 x (4, 4000, 1000)
    contended = dict(PROFILE, cores=2)
    assert model.predict("ring", 1000, 4, contended) == pytest.approx(12e-6 + 6e-6 + 0.15e-6)
    assert model.predict("ring", 1000, 2, contended) == model.predict("ring", 1000, 2, PROFILE)


def synthetic_records(profile, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    records = []
    for n in (4096, 65536, 2**20, 2**24, 2**26):
        for comm in ("tree", "ring", "mpi"):
            for p in (2, 3, 4, 8):
                records.append({"comm": comm, "bytes": n, "ranks": p,
                                "median_s": model.predict(comm, n, p, profile)})
        for w in (1, 2, 4, 7):
            for s in (1, 2):
                records.append({"comm": "ps", "bytes": n, "ranks": w, "num_servers": s,
                                "median_s": model.predict("ps", n, w, profile, s)})
    for record in records:
        record["median_s"] *= 1 + noise * rng.standard_normal()
    return records


def test_fit_recovers_alpha_beta_gamma_from_the_model_itself():
    truth = {"alpha_s": 5e-6, "beta_s_per_byte": 1 / 2e9, "gamma_s_per_byte": 1 / 8e9}
    fitted = model.fit(synthetic_records(truth))
    for key in model.PROFILE_KEYS:
        assert fitted[key] == pytest.approx(truth[key], rel=1e-6)
    assert fitted["bandwidth_Bps"] == pytest.approx(2e9, rel=1e-6)


def test_fit_recovers_alpha_beta_gamma_from_the_contended_model_itself():
    truth = {"alpha_s": 5e-6, "beta_s_per_byte": 1 / 2e9, "gamma_s_per_byte": 1 / 8e9, "cores": 2}
    records = synthetic_records(truth)
    assert any(model.contended(r["comm"], r["ranks"], r.get("num_servers") or 1, 2) for r in records)
    fitted = model.fit(records, cores=2)
    for key in model.PROFILE_KEYS:
        assert fitted[key] == pytest.approx(truth[key], rel=1e-6)
    assert fitted["cores"] == 2
    assert max(abs(error) for _, _, error in model.errors(records, fitted)) < 1e-6
    assert model.fit(records)["alpha_s"] != pytest.approx(truth["alpha_s"], rel=0.01)  # without cores: off


def test_default_cores_only_for_results_measured_here():
    import os
    import platform
    here = [{"host": platform.node()}]
    assert model.default_cores(here) == os.cpu_count()
    assert model.default_cores(here + [{"host": "node17"}]) is None
    assert model.default_cores([{}]) is None


def test_fit_tolerates_noise_and_stays_non_negative():
    truth = {"alpha_s": 5e-6, "beta_s_per_byte": 1 / 2e9, "gamma_s_per_byte": 0.0}
    fitted = model.fit(synthetic_records(truth, noise=0.05, seed=1))
    assert fitted["alpha_s"] == pytest.approx(5e-6, rel=0.3)
    assert fitted["beta_s_per_byte"] == pytest.approx(1 / 2e9, rel=0.1)
    assert 0 <= fitted["gamma_s_per_byte"] < 0.1 / 2e9


def test_fit_reports_each_points_error():
    records = synthetic_records(PROFILE)
    rows = model.errors(records, model.fit(records))
    assert len(rows) == len(records)
    assert max(abs(error) for _, _, error in rows) < 1e-6


def test_fit_needs_enough_points():
    with pytest.raises(FirecaffeError, match="at least 3"):
        model.fit([{"comm": "tree", "bytes": 10, "ranks": 2, "median_s": 1.0}])


def test_nnls_clamps_a_negative_solution_to_zero():
    a = np.array([[1.0, 1.0], [1.0, 2.0], [1.0, 3.0]])
    x = model.nnls(a, np.array([3.0, 2.0, 1.0]))  # unconstrained slope is -1
    assert x[1] == 0 and x[0] == pytest.approx(2.0)


@pytest.mark.parametrize("profile, message", [
    ({"alpha_s": 1e-6}, "missing"),
    ({"alpha_s": -1, "beta_s_per_byte": 1e-9, "gamma_s_per_byte": 0}, "non-negative"),
    ({"alpha_s": 1e-6, "beta_s_per_byte": "fast", "gamma_s_per_byte": 0}, "non-negative"),
    ({"alpha_s": 0, "beta_s_per_byte": 0, "gamma_s_per_byte": 0}, "free"),
    ({"alpha_s": math.nan, "beta_s_per_byte": 1e-9, "gamma_s_per_byte": 0}, "non-negative"),
    ([1, 2, 3], "JSON object"),
])
def test_nonsense_profiles_are_refused(profile, message):
    with pytest.raises(FirecaffeError, match=message):
        model.check_profile(profile)


def test_mpi_off_a_power_of_two_folds_the_extra_ranks_in_and_answers_them_last():
    # p = 3: q = 2 run Rabenseifner (2 messages, n bytes, n/2 added); the third rank's whole array
    # goes to its partner and the whole sum comes back: 2 more messages, 2n more bytes, n more added;
    # and r = 1 folding rank is odd: the non-folding rank's first half (n/2) shares the fold's link.
    n = 2**20
    assert model.coefficients("mpi", n, 3) == (4, 3.5 * n, 1.5 * n)
    assert model.coefficients("mpi", n, 4) == (4, 1.5 * n, 0.75 * n)
    # r = 2 folding ranks pair with each other in the first step: no half arrives early
    assert model.coefficients("mpi", n, 6) == (6, 2 * 0.75 * n + 2 * n, 1.75 * n)
    assert model.coefficients("mpi", n, 7) == (6, 2 * 0.75 * n + 2.5 * n, 1.75 * n)
    # what the busiest rank sends and receives does not change: the same bytes, earlier
    assert model.busiest_rank("mpi", n, 7)[1] == 4 * 0.75 * n + 2 * n
    # 15 ranks cost more than 16: the fold is two whole arrays over one link.
    assert model.coefficients("mpi", n, 15)[1] > model.coefficients("mpi", n, 16)[1]
