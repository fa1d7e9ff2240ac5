"""The compressed cost model (insight/bench/codecs.py): wire bytes, the formula's four terms against
hand-computed values, the delta fit against data made by the model, and the uncompressed fit untouched."""
import pytest

from firecaffe.errors import FirecaffeError
from firecaffe.insight.bench import codecs, model

PROFILE = {"alpha_s": 1e-6, "beta_s_per_byte": 1e-9, "gamma_s_per_byte": 1e-10}


@pytest.mark.parametrize("compress, n, shapes, wire", [
    ("none", 4000, None, 4000),
    ("fp16", 4000, None, 2000 + 4),                          # and an int8 exponent per 256 values
    ("bf16", 4000, None, 2000),
    ("powersgd:2", 4 * 1000, [(10, 100)], 4 * 2 * 110),      # (rows + cols) r numbers
    ("powersgd:2", 4 * 1010, [(10, 100), (10,)], 4 * (2 * 110 + 10)),   # a bias goes as it is
])
def test_wire_bytes_are_the_codecs_own(compress, n, shapes, wire):
    assert codecs.wire_bytes(compress, n, shapes) == wire


def test_int8_sends_a_byte_per_value_and_a_scale_per_block():
    from firecaffe.comm.compress.codecs import INT8_BLOCK
    assert codecs.wire_bytes("int8", 4 * 2 * INT8_BLOCK) == 2 * INT8_BLOCK + 2 * 4


def test_powersgd_runs_two_allreduces_of_its_factors():
    # P: rows r per matrix plus the vectors; Q: cols r per matrix
    assert codecs.powersgd_rounds(2, 4 * 1010, [(10, 100), (10,)]) == (4 * (20 + 10), 4 * 200)


@pytest.mark.parametrize("text", ["zip", "fp16:2", "powersgd:0", "powersgd:x", "int4"])
def test_unknown_codecs_are_refused_in_one_line(text):
    with pytest.raises(FirecaffeError, match="--compress") as error:
        codecs.parse(text)
    assert "\n" not in str(error.value)


def test_ring_fp16_terms_by_hand():
    # ring, 4 ranks, n = 4000: wire 2004 bytes -> 6 steps of alpha, 2(p-1)/p 2004 beta, (p-1)/p 2004 gamma;
    # delta on the float32 bytes added, (p-1)/p 4000, and one encode + decode of the gradient: 3000 + 4000
    assert codecs.coefficients("ring", 4000, 4, compress="fp16") == pytest.approx((6, 3006, 1503, 7000))


def test_tree_powersgd_terms_by_hand():
    # tree, 2 ranks (L = 1), one 10 x 100 matrix at rank 2: P (80 bytes) and Q (800 bytes) are each an
    # unpipelined allreduce, 2 alpha + 2 m beta + m gamma; the products cost r n = 8000 delta-bytes
    a, b, c, d = codecs.coefficients("tree", 4000, 2, compress="powersgd:2", shapes=[(10, 100)])
    assert (a, b, c, d) == pytest.approx((4, 2 * 880, 880, 8000))


def test_compressed_prediction_adds_delta_to_the_wire_formula():
    profile = dict(PROFILE, delta_s_per_byte={"fp16": 1e-11})
    a, b, c, d = codecs.coefficients("ring", 2**20, 8, compress="fp16")
    expected = a * 1e-6 + b * 1e-9 + c * 1e-10 + d * 1e-11
    assert model.predict("ring", 2**20, 8, profile, compress="fp16") == pytest.approx(expected)
    assert model.predict("ring", 2**20, 8, profile, compress="fp16") < model.predict("ring", 2**20, 8, profile)


def test_prediction_without_the_codecs_delta_says_what_to_measure():
    with pytest.raises(FirecaffeError, match="bench comm --compress int8"):
        model.predict("ring", 2**20, 8, PROFILE, compress="int8")


def records_made_by(profile, compress, compute_cores=None):
    out = []
    for comm in ("ring", "tree", "mpi"):
        for n in (2**20, 2**24):
            for p in (2, 4, 8):
                out.append({"comm": comm, "bytes": n, "ranks": p, "compress": compress,
                            "median_s": model.predict(comm, n, p, profile, compress=compress,
                                                      compute_cores=compute_cores)})
    return out


@pytest.mark.parametrize("compress, delta", [("fp16", 2e-10), ("int8", 5e-10), ("powersgd:4", 1e-10)])
def test_fit_recovers_delta_from_data_the_model_made(compress, delta):
    family = codecs.family(compress)
    truth = dict(PROFILE, delta_s_per_byte={family: delta})
    fitted = codecs.fit(records_made_by(truth, compress), PROFILE)
    assert fitted == {family: pytest.approx(delta, rel=1e-9)}


def test_fit_recovers_delta_from_ranks_that_shared_two_cores():
    truth = dict(PROFILE, delta_s_per_byte={"int8": 5e-10})
    shared = records_made_by(truth, "int8", compute_cores=2)
    assert codecs.fit(shared, PROFILE, compute_cores=2) == {"int8": pytest.approx(5e-10, rel=1e-9)}
    assert codecs.fit(shared, PROFILE)["int8"] > 6e-10         # read as uncontended, delta comes out too big


def test_compressed_records_leave_the_uncompressed_fit_as_it_was():
    plain = [{"comm": comm, "bytes": n, "ranks": p, "median_s": model.predict(comm, n, p, PROFILE)}
             for comm in ("ring", "tree", "mpi") for n in (2**12, 2**20, 2**24) for p in (2, 4, 8)]
    noisy = records_made_by(dict(PROFILE, delta_s_per_byte={"fp16": 1e-8}), "fp16")
    assert model.fit(plain + noisy) == model.fit(plain)
    assert model.errors(plain + noisy, PROFILE) == model.errors(plain, PROFILE)


def test_shapes_of_an_analysis_report():
    layers = [{"param_shapes": [[64, 3, 3, 3], [64]]}, {"param_shapes": [[10, 256]]}]
    assert codecs.shapes_of(layers) == [(64, 3, 3, 3), (64,), (10, 256)]


def test_codec_table_shows_each_compressed_point_against_the_fit():
    from firecaffe.insight.bench.report import codec_table
    truth = dict(PROFILE, delta_s_per_byte={"fp16": 2e-10})
    records = records_made_by(truth, "fp16")
    fitted = dict(PROFILE, delta_s_per_byte=codecs.fit(records, PROFILE))
    table = codec_table(records + [{"comm": "ring", "bytes": 4, "ranks": 4, "median_s": 1.0}], fitted, 4)
    assert table.count("| fp16 |") == len(records) + 3       # every point, and the worst per strategy
    assert "delta (encode + decode per float32 byte): fp16 200 ps/byte" in table
    assert "+0%" in table and "| ring | fp16 | 0% |" in table
