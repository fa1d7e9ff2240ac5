"""Relative indexing of a sparse layer (Deep Compression, Han et al. 2016, Figure 2).

The positions of the kept weights (in the flat blob, C order) are stored as the distance
from the previous entry, ``gap`` >= 1, written as the symbol ``gap - 1`` in ``width`` bits
(0 .. 2**width - 1). A gap larger than 2**width is bridged with filler entries: each one
advances 2**width positions and holds the value zero (code 0 of the layer's codebook), so
a gap ``d`` costs ``(d - 1) // 2**width`` fillers and leaves the symbol ``(d - 1) % 2**width``.
"""
import numpy as np

from . import huffman

MAX_WIDTH = 16


def gaps(positions):
    """Distances between consecutive kept positions, the first counted from -1."""
    positions = np.asarray(positions, dtype=np.int64)
    return np.diff(positions, prepend=-1)


def encode(positions, codes, width):
    """(index symbols, codes with fillers as 0): the two streams of a sparse blob.

    ``codes`` are the kept weights' codes (never 0) or values, one per position.
    """
    span = 1 << width
    d = gaps(positions) - 1
    last = (d >> width) + 1                     # fillers + the entry itself
    np.cumsum(last, out=last)
    last -= 1
    total = int(last[-1]) + 1 if last.size else 0
    symbols = np.full(total, span - 1, dtype=np.int32)
    symbols[last] = d & (span - 1)
    del d
    out = np.zeros(total, dtype=np.asarray(codes).dtype)
    out[last] = codes
    return symbols, out


def decode(symbols, codes, size):
    """(positions, codes) of the real entries: fillers (code 0) dropped."""
    positions = np.cumsum(np.asarray(symbols, dtype=np.int64) + 1) - 1
    real = np.asarray(codes) != 0
    positions, codes = positions[real], codes[real]
    if positions.size and (positions[-1] >= size or positions[0] < 0):
        raise ValueError(f"an index points past the blob's {size} weights")
    return positions, codes


def width_costs(positions, code_counts, widths=range(1, MAX_WIDTH + 1)):
    """{width: (fillers, index bits, code bits)} after Huffman coding, for each width.

    ``code_counts``: how often each code (1..K) of the real entries occurs (index 0 unused);
    fillers add to code 0's count. Computed from the histogram of gaps, without building streams.
    """
    values, counts = np.unique(gaps(positions) - 1, return_counts=True)
    out = {}
    for width in widths:
        span = 1 << width
        fillers_each = values >> width
        fillers = int(np.dot(fillers_each, counts))
        index_counts = np.bincount(values & (span - 1), weights=counts, minlength=span).astype(np.int64)
        index_counts[span - 1] += fillers
        codes = np.array(code_counts, dtype=np.int64)
        codes[0] += fillers
        index_bits = huffman.encoded_bits(index_counts, huffman.code_lengths(index_counts))
        code_bits = huffman.encoded_bits(codes, huffman.code_lengths(codes))
        out[width] = (fillers, index_bits, code_bits)
    return out


def best_width(positions, code_counts, value_bits=None):
    """The width giving the smallest layer: Huffman-coded streams and the index's code-length table
    (5 bits a symbol), or with ``value_bits`` given, fixed-size values (unquantized weights)."""
    costs = width_costs(positions, code_counts)

    def size(width):
        fillers, index_bits, code_bits = costs[width]
        return index_bits + 5 * (1 << width) + (code_bits if value_bits is None else value_bits * (len(positions) + fillers))
    return min(costs, key=size)
