"""The codecs of --compress without MPI: names, bytes, one message each way, overflow, PowerSGD's algebra."""
import threading

import numpy as np
import pytest

from firecaffe.comm.compress import (Param, layout_from_shapes, make_codec, parse_compress, square_layout)
from firecaffe.comm.compress.codecs import INT8_BLOCK
from firecaffe.errors import FirecaffeError


@pytest.mark.parametrize("text, name", [("none", "none"), ("FP16", "fp16"), ("bf16", "bf16"), ("int8", "int8"),
                                        ("powersgd", "powersgd:4"), ("powersgd:1", "powersgd:1"),
                                        (" powersgd:32 ", "powersgd:32")])
def test_parse_compress_reads_every_codec(text, name):
    assert parse_compress(text).name == name
    assert make_codec(text).name == name


@pytest.mark.parametrize("text, words", [("zip", "unknown codec"), ("powersgd:0", "at least 1"),
                                         ("powersgd:-2", "at least 1"), ("powersgd:x", "at least 1"),
                                         ("int8:3", "only powersgd takes a rank"), ("", "unknown codec")])
def test_a_bad_compress_value_is_one_line_naming_what_works(text, words):
    with pytest.raises(FirecaffeError) as error:
        parse_compress(text)
    message = str(error.value)
    assert words in message and "\n" not in message
    assert "none, fp16, bf16, int8 or powersgd[:RANK]" in message


def test_compress_start_must_not_be_negative():
    with pytest.raises(FirecaffeError, match="--compress-start -1"):
        make_codec("fp16", start=-1)


def test_wire_bytes_count_what_each_codec_sends():
    n = 4 * 100_000
    assert make_codec("none").wire_bytes(n) == n
    assert make_codec("fp16").wire_bytes(n) == n // 2 + -(-100_000 // INT8_BLOCK)     # and an exponent a block
    assert make_codec("bf16").wire_bytes(n) == n // 2
    assert make_codec("int8").wire_bytes(n) == 100_000 + 4 * -(-100_000 // INT8_BLOCK)
    # PowerSGD: (rows + cols) r numbers per matrix, vectors whole
    shapes = [(64, 32, 3, 3), (64,), (10, 500)]
    expected = 4 * ((64 + 288) * 4 + 64 + (10 + 500) * 4)
    assert make_codec("powersgd:4").wire_bytes(4 * (64 * 288 + 64 + 5000), shapes=shapes) == expected
    # without shapes: one square-ish matrix
    assert square_layout(2**20)[0].shape == (1024, 1024)
    assert make_codec("powersgd:4").wire_bytes(4 * 2**20) == 4 * 2048 * 4


@pytest.mark.parametrize("text, relative", [("fp16", 2.0 ** -11), ("bf16", 2.0 ** -8)])
def test_16_bit_codecs_round_to_nearest(text, relative):
    codec = make_codec(text)
    values = np.random.default_rng(0).standard_normal(1001).astype(np.float32) * 100
    wire = codec.encode(values)
    assert wire.dtype == np.uint8 and wire.size == codec.wire_length(values.size)
    decoded = np.empty_like(values)
    codec.decode(wire, decoded)
    assert np.all(np.abs(decoded - values) <= relative * np.abs(values))
    total = np.ones_like(values)
    codec.decode_add(wire, total)
    np.testing.assert_array_equal(total, np.float32(1) + decoded)


def test_bf16_is_float32s_top_half_rounded_to_nearest_even():
    codec = make_codec("bf16")
    values = np.array([1.0, 1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, -2.5, 3e38], np.float32)
    decoded = np.empty_like(values)
    codec.decode(codec.encode(values), decoded)
    np.testing.assert_array_equal(decoded[:4], [1.0, 1.0, 1.0 + 2.0 ** -6, -2.5])   # ties go to the even
    assert np.isfinite(decoded[-1]) and abs(decoded[-1] - 3e38) <= 3e38 * 2 ** -8


def test_int8_scales_each_block_by_its_largest_value():
    codec = make_codec("int8")
    values = np.concatenate([np.linspace(-1, 1, INT8_BLOCK), np.linspace(-1000, 1000, 10)]).astype(np.float32)
    wire = codec.encode(values)
    assert wire.size == codec.wire_length(values.size) == 2 * 4 + values.size
    decoded = np.empty_like(values)
    codec.decode(wire, decoded)
    assert np.all(np.abs(decoded[:INT8_BLOCK] - values[:INT8_BLOCK]) <= 0.5 / 127 + 1e-7)
    assert np.all(np.abs(decoded[INT8_BLOCK:] - values[INT8_BLOCK:]) <= 0.5 * 1000 / 127 + 1e-4)
    assert decoded[0] == -1 and decoded[-1] == 1000          # the largest of a block is exact
    zeros = np.zeros(5, np.float32)
    codec.decode(codec.encode(zeros), decoded[:5])
    assert not decoded[:5].any()


def test_int8_blocks_of_tiny_values_are_sent_as_zeros_without_invalid_arithmetic():
    """A block whose largest value is below 127 x float32's smallest normal: its scale has no finite
    inverse, so the block goes out as zeros (error feedback keeps it), with no overflow, NaN or
    invalid cast on the way (each of which NumPy warned about, and an int8 cast of inf or NaN is
    undefined); a normal block beside it is encoded as before."""
    codec = make_codec("int8")
    values = np.concatenate([np.full(INT8_BLOCK, 1e-39, np.float32), np.zeros(3, np.float32),
                             np.linspace(-1, 1, INT8_BLOCK, dtype=np.float32)])
    values[1] = -3e-38
    with np.errstate(over="raise", invalid="raise", divide="raise"):     # underflow to subnormal is fine
        wire = codec.encode(values)
        decoded = np.empty_like(values)
        codec.decode(wire, decoded)
    assert not decoded[:INT8_BLOCK].any() and not np.signbit(decoded[:INT8_BLOCK]).any()
    assert np.all(np.abs(decoded[INT8_BLOCK:] - values[INT8_BLOCK:]) <= 0.5 / 127 + 1e-7)


def test_fp16_infinity_names_the_parameter_and_iteration():
    codec = make_codec("fp16")
    codec.bind(layout_from_shapes([(10,), (5, 20)], ["ip1 (bias)", "ip1 (weights)"]))
    codec.begin(12)
    buf = np.ones(110, np.float32)
    buf[20] = 1e5                                      # beyond 65504, but finite: shifted into range
    buf[50] = np.inf
    link = codec.link(buf)
    link.outgoing(slice(0, 40))
    with pytest.raises(FirecaffeError) as error:
        link.outgoing(slice(40, 110))
    message = str(error.value)
    assert "iteration 12" in message and "ip1 (weights)" in message and "element 40 of shape (5, 20)" in message
    assert "inf" in message and "learning rate" in message and "\n" not in message


def test_fp16_keeps_its_precision_for_gradients_far_below_its_smallest_normal():
    # gradients are mostly 1e-8..1e-4 (squeezenet on the digits: 98% under 6.1e-5 at iteration 100); a plain
    # cast keeps a few bits of them, or none; each block's power-of-two shift keeps fp16's 11 bits
    codec = make_codec("fp16")
    rng = np.random.default_rng(0)
    values = (rng.standard_normal(3000) * 10.0 ** rng.uniform(-8, -4, 3000)).astype(np.float32)
    values[7] = 1e5
    wire = codec.encode(values)
    assert wire.size == codec.wire_length(values.size) == 2 * values.size + -(-values.size // INT8_BLOCK)
    decoded = np.empty_like(values)
    codec.decode(wire, decoded)
    rest = np.arange(values.size) >= INT8_BLOCK                # the first block holds 1e5 beside 1e-8
    assert np.all(np.abs(decoded - values)[rest] <= np.abs(values)[rest] * 2.0 ** -11)
    assert abs(decoded[7] - 1e5) <= 1e5 * 2.0 ** -11 and codec.overflow(wire) is None
    with np.errstate(over="ignore"):
        plain = values.astype(np.float16).astype(np.float32)
    assert np.median(np.abs(plain - values)[rest] / np.abs(values)[rest]) > 20 * 2.0 ** -11


def test_compress_start_sends_the_first_iterations_plain():
    codec = make_codec("int8", start=3)
    buf = np.arange(10, dtype=np.float32)
    codec.begin(2)
    assert not codec.active and not codec.link(buf).coded
    codec.begin(3)
    assert codec.active and codec.link(buf).coded


def test_int8_link_keeps_what_each_encode_loses():
    codec = make_codec("int8")
    values = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    buf = values.copy()
    link = codec.link(buf, at=0)
    wire = link.outgoing(slice(0, 1000))
    decoded = np.empty_like(values)
    codec.decode(wire, decoded)
    np.testing.assert_allclose(decoded + codec.residual(0, 1000), values, rtol=0, atol=1e-6)
    # the next step's gradient gets the residual added in first
    kept = codec.residual(0, 1000).copy()
    following = np.zeros(1000, np.float32)
    codec.link(following, at=0)
    np.testing.assert_array_equal(following, kept)


def simulate_allreduce(codecs, bufs, reduce_args):
    """Run ``codec.reduce`` on each of len(codecs) simulated ranks (threads) with a summing allreduce."""
    ranks = len(codecs)
    barrier, slots = threading.Barrier(ranks), [None] * ranks

    def allreduce_for(rank):
        def allreduce(array):
            slots[rank] = array.copy()
            barrier.wait()
            total = sum(slots[1:], slots[0].copy())
            barrier.wait()
            array[...] = total
        return allreduce

    threads = [threading.Thread(target=codec.reduce, args=(buf, reduce_args, allreduce_for(rank), ranks))
               for rank, (codec, buf) in enumerate(zip(codecs, bufs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def powersgd_ranks(text, shapes, ranks):
    codecs = [make_codec(text) for _ in range(ranks)]
    for codec in codecs:
        codec.bind(layout_from_shapes(shapes))
    return codecs


def test_powersgd_at_full_rank_equals_the_exact_sum():
    shapes = [(6, 10), (10,), (6, 3, 2, 2), (9, 6)]
    size = sum(int(np.prod(s)) for s in shapes)
    codecs = powersgd_ranks("powersgd:6", shapes, 3)
    bufs = [np.random.default_rng(r).standard_normal(size).astype(np.float32) for r in range(3)]
    exact = sum(b.astype(np.float64) for b in bufs)
    simulate_allreduce(codecs, bufs, 0)
    for buf in bufs:
        np.testing.assert_allclose(buf, exact, rtol=0, atol=1e-4)
        np.testing.assert_array_equal(buf, bufs[0])


def test_powersgd_low_rank_keeps_the_rest_as_residual_and_sends_vectors_whole():
    shapes = [(40, 30), (40,)]
    codecs = powersgd_ranks("powersgd:2", shapes, 2)
    bufs = [np.random.default_rng(r + 5).standard_normal(1240).astype(np.float32) for r in range(2)]
    originals = [b.copy() for b in bufs]
    exact = sum(b.astype(np.float64) for b in bufs)
    simulate_allreduce(codecs, bufs, 0)
    np.testing.assert_allclose(bufs[0][1200:], exact[1200:], atol=1e-5)      # the bias: exact
    assert np.abs(bufs[0][:1200] - exact[:1200]).max() > 0.1                   # rank 2 of a random 40x30
    # what each rank lost, summed, is what the transmitted sum misses (error feedback's invariant)
    residuals = sum(c.state()["residual"].astype(np.float64) for c in codecs)
    np.testing.assert_allclose(bufs[0] + residuals, exact, atol=1e-4)
    assert {"residual", "q"} <= set(codecs[0].state())
    np.testing.assert_array_equal(codecs[0].state()["q"], codecs[1].state()["q"])   # Q is the same everywhere
    assert not np.array_equal(originals[0], bufs[0])


def test_powersgd_rank_beyond_a_matrix_names_the_layer():
    codec = make_codec("powersgd:8")
    with pytest.raises(FirecaffeError) as error:
        codec.bind([Param("layer 'conv1' weights", 0, (6, 1, 5, 5)), Param("layer 'conv1' bias", 150, (6,))])
    assert "conv1" in str(error.value) and "6x25" in str(error.value) and "powersgd:6 or less" in str(error.value)
    make_codec("powersgd:8").bind([Param("ip (bias)", 0, (3,)), Param("ip", 3, (1, 50))])   # vectors: uncompressed


def test_powersgd_buckets_keep_each_matrix_whole():
    codec = make_codec("powersgd:2")
    codec.bind(layout_from_shapes([(10, 10), (10,), (20, 20), (4, 4)]))
    assert codec.bucket_slices(526, 50) == [slice(0, 100), slice(100, 510), slice(510, 526)]
    assert make_codec("int8").bucket_slices(100, 30) == [slice(0, 30), slice(30, 60), slice(60, 90), slice(90, 100)]


def test_codec_state_round_trips():
    codec = powersgd_ranks("powersgd:2", [(40, 30), (40,)], 2)
    bufs = [np.random.default_rng(r).standard_normal(1240).astype(np.float32) for r in range(2)]
    simulate_allreduce(codec, bufs, 0)
    fresh = make_codec("powersgd:2")
    fresh.bind(layout_from_shapes([(40, 30), (40,)]))
    fresh.load_state(codec[0].state())
    for key, value in codec[0].state().items():
        np.testing.assert_array_equal(fresh.state()[key], value)


@pytest.mark.parametrize("name, codec, words", [
    ("mpi", "fp16", "--comm mpi cannot send --compress fp16: with --comm mpi use --compress powersgd[:RANK] or none; "
                    "MPI's Allreduce adds float32 and float64 only"),
    ("ps", "powersgd:2", "--comm ps cannot send --compress powersgd:2: with --comm ps use --compress fp16, bf16, int8 "
                         "or none"),
    ("nccl", "int8", "--comm nccl cannot send --compress int8: with --comm nccl use --compress none"),
])
def test_a_strategy_refuses_a_codec_it_cannot_send_naming_what_works(name, codec, words):
    from firecaffe.comm import strategy_class
    with pytest.raises(FirecaffeError) as error:
        strategy_class(name).check_codec(make_codec(codec))
    assert words in str(error.value) and "\n" not in str(error.value)
    for name in ("tree", "dbtree", "ring", "hier"):
        for text in ("fp16", "bf16", "int8", "powersgd:2"):
            assert strategy_class(name).check_codec(make_codec(text)).name == text
