"""firecaffe test's plan: batches of the net's batch size cover the source once, spread over
ranks as their ShardCursors read them; means are weighted by samples."""
import numpy as np

from firecaffe.data.sharding import ShardCursor
from firecaffe.insight.scoring import Plan, means


def test_one_pass_covers_every_sample_once_on_any_rank_count():
    for samples, batch in [(360, 100), (360, 120), (7, 3), (5, 8)]:
        plan = Plan(samples, batch)
        for size in (1, 2, 3, 4, 5):
            seen = []
            for rank in range(size):
                cursor = ShardCursor(samples, batch, (rank, size))
                for entry in plan.sizes(rank, size):
                    indices = cursor.next()
                    if entry is not None:
                        k, n = entry
                        assert indices[0] == k * batch
                        seen.extend(indices[:n])
            assert sorted(seen) == list(range(samples)), (samples, batch, size)


def test_a_given_number_of_batches_is_full_batches():
    plan = Plan(360, 100, iterations=5)
    assert plan.batches == 5 and plan.last == 100
    assert plan.sizes(1, 2) == [(1, 100), (3, 100), None]
    assert Plan(None, None).batches == 50
    assert Plan(None, None, iterations=3).sizes(0, 2) == [(0, 1), (2, 1)]      # no source: equal weights


def test_means_weigh_batches_by_samples():
    records = [(0, 100, 0.5, {"accuracy": np.array([0.8])}), (1, 60, 0.25, {"accuracy": np.array([1.0])})]
    total, loss, out = means(records)
    assert total == 160
    assert loss == (100 * 0.5 + 60 * 0.25) / 160 and out["accuracy"][0] == (80 + 60) / 160


def test_a_data_layer_without_a_known_size_is_no_source():
    from types import SimpleNamespace
    from firecaffe.insight.scoring import source_of
    windows = SimpleNamespace(cursor=SimpleNamespace(batch_size=4, position=0))      # WindowData's counter
    hdf5 = SimpleNamespace(cursor=ShardCursor(10, 4))
    assert source_of(SimpleNamespace(layers=[windows])) == (None, None)
    assert source_of(SimpleNamespace(layers=[windows, hdf5])) == (hdf5, 1)
