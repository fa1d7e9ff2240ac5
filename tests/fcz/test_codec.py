"""Huffman coding, relative sparse indices and 1-D k-means: the lossless and lossy pieces of .fcz,
each against an independent oracle (a bit-by-bit prefix decoder, the paper's hand example,
scikit-learn's k-means, the entropy bound)."""
import numpy as np
import pytest

from firecaffe.fcz import huffman, quantize, sparse


def naive_decode(data, lengths, count):
    """Walk the bits one at a time against the code table (the oracle for the lockstep decoder)."""
    codes = huffman.canonical_codes(lengths)
    table = {(int(lengths[s]), int(codes[s])): s for s in np.flatnonzero(lengths)}
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    out, value, size, i = [], 0, 0, 0
    while len(out) < count:
        value, size, i = (value << 1) | int(bits[i]), size + 1, i + 1
        if (size, value) in table:
            out.append(table[(size, value)])
            value, size = 0, 0
    return np.array(out)


@pytest.mark.parametrize("alphabet,n,skew", [(2, 1, 0), (1 << 5, 5000, 1.5), (256, 20000, 0.5),
                                             (1 << 16, 9000, 0.0), (16, 4097, 3.0)])
def test_huffman_round_trip_matches_a_bitwise_decoder(alphabet, n, skew):
    gen = np.random.default_rng(alphabet + n)
    p = np.exp(-skew * np.arange(alphabet) / max(1, alphabet / 8))
    symbols = gen.choice(alphabet, size=n, p=p / p.sum())
    counts = np.bincount(symbols, minlength=alphabet)
    lengths = huffman.code_lengths(counts)
    data, blocks = huffman.encode(symbols, lengths)
    back = huffman.decode(data, lengths, n, blocks.astype(np.int64))
    np.testing.assert_array_equal(back, symbols)
    if n < 10000:
        np.testing.assert_array_equal(naive_decode(data, lengths, n), symbols)
    assert len(data) == -(-huffman.encoded_bits(counts, lengths) // 8)


def test_huffman_lengths_are_optimal_within_one_bit_and_prefix_free():
    counts = np.array([45, 13, 12, 16, 9, 5])        # the textbook example: lengths 1,3,3,3,4,4
    lengths = huffman.code_lengths(counts)
    assert sorted(lengths.tolist()) == [1, 3, 3, 3, 4, 4]
    assert huffman.encoded_bits(counts, lengths) == 224
    gen = np.random.default_rng(3)
    counts = gen.integers(0, 1000, size=300)
    lengths = huffman.code_lengths(counts)
    p = counts[counts > 0] / counts.sum()
    entropy = -(p * np.log2(p)).sum()
    mean = huffman.encoded_bits(counts, lengths) / counts.sum()
    assert entropy <= mean < entropy + 1
    used = lengths[lengths > 0].astype(float)
    assert np.isclose(np.sum(2.0 ** -used), 1.0)       # a complete prefix code (Kraft)


def test_huffman_limits_code_length_on_fibonacci_frequencies():
    fib = [1, 1]
    while len(fib) < 40:
        fib.append(fib[-1] + fib[-2])
    lengths = huffman.code_lengths(np.array(fib))
    assert lengths.max() <= huffman.MAX_LENGTH
    symbols = np.repeat(np.arange(40), 3)
    data, blocks = huffman.encode(symbols, lengths)
    np.testing.assert_array_equal(huffman.decode(data, lengths, symbols.size, blocks.astype(np.int64)), symbols)


def test_code_length_table_packs_five_bits_each():
    lengths = np.array([0, 1, 20, 31, 7, 0, 3], dtype=np.uint8)
    packed = huffman.pack_lengths(lengths)
    assert len(packed) == -(-5 * 7 // 8)
    np.testing.assert_array_equal(huffman.unpack_lengths(packed, 7), lengths)


def test_relative_index_inserts_filler_zeros_as_in_the_paper():
    # Figure 2 of Han et al.: 3-bit differences; a gap of more than 8 takes a filler zero
    positions = np.array([1, 4, 15])
    symbols, codes = sparse.encode(positions, np.array([7, 8, 9]), width=3)
    # 1: gap 2 -> symbol 1; 4: gap 3 -> 2; 15: gap 11 > 8 -> filler at 12 (symbol 7), then gap 3 -> 2
    assert symbols.tolist() == [1, 2, 7, 2]
    assert codes.tolist() == [7, 8, 0, 9]
    back, real = sparse.decode(symbols, codes, 16)
    assert back.tolist() == [1, 4, 15] and real.tolist() == [7, 8, 9]


@pytest.mark.parametrize("width", [1, 2, 5, 8])
def test_relative_index_round_trips_random_masks(width):
    gen = np.random.default_rng(width)
    n = 5000
    positions = np.flatnonzero(gen.random(n) < 0.07)
    codes = gen.integers(1, 30, size=positions.size)
    symbols, stored = sparse.encode(positions, codes, width)
    assert symbols.max() < 1 << width
    back, real = sparse.decode(symbols, stored, n)
    np.testing.assert_array_equal(back, positions)
    np.testing.assert_array_equal(real, codes)
    fillers, _, _ = sparse.width_costs(positions, np.bincount(codes), [width])[width]
    assert fillers == stored.size - positions.size


def test_kmeans_matches_scikit_learn_from_the_linear_start():
    sklearn = pytest.importorskip("sklearn.cluster")
    gen = np.random.default_rng(0)
    values = np.concatenate([gen.normal(-0.05, 0.01, 3000), gen.normal(0.04, 0.02, 2000)]).astype(np.float32)
    k = 16
    ours = quantize.kmeans_1d(values, k, iterations=300)
    init = np.linspace(values.min(), values.max(), k).reshape(-1, 1)
    theirs = sklearn.KMeans(k, init=init, n_init=1, max_iter=300, tol=0, algorithm="lloyd").fit(
        values.reshape(-1, 1).astype(np.float64)).cluster_centers_.ravel()
    np.testing.assert_allclose(np.sort(ours), np.sort(theirs), atol=1e-6)
    codes = quantize.assign(values, ours)
    nearest = np.abs(values[:, None] - ours[None, :]).argmin(axis=1)
    np.testing.assert_array_equal(ours[codes], ours[nearest])


def test_codebook_is_lossless_for_weights_already_shared():
    values = np.array([0.5, -0.25, 0.5, 0.125, -0.25], dtype=np.float32)
    codebook, codes = quantize.codebook_for(values, 4)
    np.testing.assert_array_equal(codebook[codes], values)
    codebook, codes = quantize.codebook_for(values, 2)
    assert codebook.size == 2


def test_huffman_stream_encoded_in_chunks_decodes_whole(monkeypatch):
    monkeypatch.setattr(huffman, "CHUNK", huffman.BLOCK)        # many chunks, bit carries between them
    gen = np.random.default_rng(9)
    symbols = gen.choice(7, size=5 * huffman.BLOCK + 13, p=[0.4, 0.2, 0.15, 0.1, 0.1, 0.03, 0.02])
    lengths = huffman.code_lengths(np.bincount(symbols, minlength=7))
    data, blocks = huffman.encode(symbols, lengths)
    assert blocks.size == 6 and len(data) == -(-int(blocks.sum()) // 8)
    np.testing.assert_array_equal(huffman.decode(data, lengths, symbols.size, blocks.astype(np.int64)), symbols)
