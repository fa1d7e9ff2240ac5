"""Canonical Huffman coding of small-alphabet integer streams, vectorised with NumPy.

A code is described by its code lengths alone (canonical: codes are handed out in order of
(length, symbol)), so a stream's table is one length per symbol of its alphabet, stored as
5-bit fields (0: symbol unused). Code lengths are limited to ``MAX_LENGTH`` so that the
decoder reads a symbol with one look-up into a table of ``2 ** longest`` entries.

The bit stream is cut into blocks of ``BLOCK`` symbols and the length in bits of each block
is kept (uint16: a block holds at most BLOCK * MAX_LENGTH bits). The decoder then walks all
blocks in lockstep: BLOCK vectorised steps, whatever the stream's length.
"""
import heapq

import numpy as np

MAX_LENGTH = 20
BLOCK = 2048                       # BLOCK * MAX_LENGTH < 2 ** 16
CHUNK = 256 * BLOCK                # symbols encoded at a time


def code_lengths(counts, limit=MAX_LENGTH):
    """Huffman code lengths (uint8, 0 for symbols never used) for symbol frequencies ``counts``.

    Lengths over ``limit`` are avoided by halving the frequencies (keeping each used symbol at
    least 1) until the longest code fits: slightly suboptimal only on extreme distributions.
    """
    counts = np.asarray(counts, dtype=np.int64)
    used = np.flatnonzero(counts)
    lengths = np.zeros(counts.size, dtype=np.uint8)
    if used.size == 0:
        return lengths
    if used.size == 1:
        lengths[used] = 1
        return lengths
    if used.size > 1 << limit:
        raise ValueError(f"{used.size} symbols cannot have codes of at most {limit} bits")
    weights = counts[used]
    while True:
        depth = _tree_depths(weights)
        if depth.max() <= limit:
            lengths[used] = depth
            return lengths
        weights = np.maximum(weights >> 1, 1)


def _tree_depths(weights):
    """Depth of each leaf in a Huffman tree over ``weights`` (two or more)."""
    heap = [(int(w), i) for i, w in enumerate(weights)]
    heapq.heapify(heap)
    parent = np.full(2 * len(weights) - 1, -1, dtype=np.int64)
    node = len(weights)
    while len(heap) > 1:
        w1, a = heapq.heappop(heap)
        w2, b = heapq.heappop(heap)
        parent[a] = parent[b] = node
        heapq.heappush(heap, (w1 + w2, node))
        node += 1
    depth = np.zeros(parent.size, dtype=np.int64)
    for n in range(parent.size - 2, -1, -1):      # parents are numbered after their children
        depth[n] = depth[parent[n]] + 1
    return depth[:len(weights)]


def canonical_codes(lengths):
    """The canonical code (uint32) of each symbol, from its code length."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(lengths.size, dtype=np.uint32)
    order = np.lexsort((np.arange(lengths.size), lengths))
    order = order[lengths[order] > 0]
    code, previous = 0, 0
    for sym in order:
        length = int(lengths[sym])
        code <<= length - previous
        codes[sym] = code
        code += 1
        previous = length
    return codes


def encoded_bits(counts, lengths):
    """Size in bits of a stream with symbol frequencies ``counts`` coded with ``lengths``."""
    return int(np.dot(np.asarray(counts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)))


def encode(symbols, lengths):
    """(packed bytes, uint16 bit length of each block of BLOCK symbols) of ``symbols``.

    Works through the stream in chunks of CHUNK symbols (a whole number of blocks), so its
    scratch memory stays a few bytes per symbol of one chunk whatever the stream's length."""
    symbols = np.asarray(symbols)
    codes = canonical_codes(lengths)
    sizes_of = np.asarray(lengths, dtype=np.uint8)
    out, blocks, carry = [], [], np.zeros(0, dtype=np.uint8)
    for low in range(0, symbols.size, CHUNK):
        chunk = symbols[low:low + CHUNK]
        size = sizes_of[chunk]
        if not size.all():
            raise ValueError("a symbol without a code")
        starts = np.cumsum(size, dtype=np.int64)
        bits = np.zeros(int(starts[-1]), dtype=np.uint8)
        starts -= size
        blocks.append(np.add.reduceat(size, np.arange(0, chunk.size, BLOCK), dtype=np.int64))
        value = codes[chunk]
        for j in range(int(size.max())):          # bit j of every code, from its most significant
            has = np.flatnonzero(size > j)
            bits[starts[has] + j] = (value[has] >> (size[has] - 1 - j).astype(np.uint32)) & 1
        bits = np.concatenate([carry, bits])
        whole = bits.size - bits.size % 8
        out.append(np.packbits(bits[:whole]).tobytes())
        carry = bits[whole:]
    if carry.size:
        out.append(np.packbits(carry).tobytes())
    block_bits = np.concatenate(blocks).astype(np.uint16) if blocks else np.zeros(0, dtype=np.uint16)
    return b"".join(out), block_bits


def decode(data, lengths, count, block_bits, dtype=np.int64):
    """The ``count`` symbols coded in ``data`` (bytes) with code ``lengths`` (see ``encode``)."""
    out = np.empty(count, dtype=dtype)
    if count == 0:
        return out
    lengths = np.asarray(lengths, dtype=np.int64)
    longest = int(lengths.max())
    codes = canonical_codes(lengths).astype(np.int64)
    sym_of = np.zeros(1 << longest, dtype=np.int64)
    len_of = np.zeros(1 << longest, dtype=np.int64)
    for sym in np.flatnonzero(lengths):
        span = longest - lengths[sym]
        first = codes[sym] << span
        sym_of[first:first + (1 << span)] = sym
        len_of[first:first + (1 << span)] = lengths[sym]
    raw = np.frombuffer(data, dtype=np.uint8)
    padded = np.concatenate([raw, np.zeros(4, dtype=np.uint8)]).astype(np.uint32)
    blocks = -(-count // BLOCK)
    if len(block_bits) != blocks or int(np.sum(block_bits, dtype=np.int64)) > 8 * raw.size:
        raise ValueError("the block table does not fit the stream")
    pos = np.concatenate([[0], np.cumsum(block_bits[:-1], dtype=np.int64)])
    mask = (1 << longest) - 1
    index = np.arange(blocks, dtype=np.int64) * BLOCK
    for step in range(min(BLOCK, count)):
        live = index + step < count
        if not live.all():
            pos, index = pos[live], index[live]
        at = pos >> 3
        word = (padded[at] << 24) | (padded[at + 1] << 16) | (padded[at + 2] << 8) | padded[at + 3]
        peek = (word >> (32 - longest - (pos & 7)).astype(np.uint32)) & mask
        out[index + step] = sym_of[peek]
        pos = pos + len_of[peek]
    return out


def pack_lengths(lengths):
    """Code lengths (each < 32) as 5-bit fields, packed."""
    lengths = np.asarray(lengths, dtype=np.uint8)
    bits = np.unpackbits(lengths[:, None], axis=1)[:, 3:]
    return np.packbits(bits.reshape(-1)).tobytes()


def unpack_lengths(data, alphabet):
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[:5 * alphabet]
    if bits.size < 5 * alphabet:
        raise ValueError("the code-length table is cut short")
    fields = np.concatenate([np.zeros((alphabet, 3), np.uint8), bits.reshape(alphabet, 5)], axis=1)
    return np.packbits(fields, axis=1).reshape(-1)
