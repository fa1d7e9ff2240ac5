"""One weight blob in a .fcz file: how it is coded, and what each stage of Deep Compression costs.

Four codings (docs/compression.md has the byte layout):

    raw       float32 values
    dense-q   a codebook of at most 2**bits float32 values; Huffman-coded codes, one per weight
    sparse-q  a codebook whose entry 0 is 0.0 (fillers) and at most 2**bits - 1 others;
              Huffman-coded relative indices and Huffman-coded codes of the kept weights
    sparse-f  Huffman-coded relative indices; the kept weights as float32 (pruned, not quantized)

``encode`` writes a blob's sections into a list of byte strings and returns its header entry
and its costs; ``decode`` reads them back from a memoryview at an offset.
"""
import numpy as np

from . import huffman, quantize, sparse


def encode(array, bits=None, width=None, sparse_ok=True):
    """(header dict, list of byte strings, costs dict) for ``array``.

    ``bits``: quantize to at most 2**bits shared values (None: keep float32); ``width``: the
    relative index's width in bits (None: the one giving the smallest file). A blob holding
    exact zeros is stored sparse (``sparse_ok``), otherwise dense.
    """
    flat = np.ascontiguousarray(array, dtype=np.float32).reshape(-1)
    n = flat.size
    positions = np.flatnonzero(flat) if sparse_ok else None
    use_sparse = positions is not None and positions.size < n
    head = {"shape": list(np.shape(array))}
    if not use_sparse and bits is None:
        head["enc"] = "raw"
        return head, [flat.astype("<f4").tobytes()], _costs(n, n, n, 32, 0, 32 * n)
    if not use_sparse:
        codebook, codes = quantize.codebook_for(flat, 1 << bits)
        head.update(enc="dense-q", bits=bits, k=int(codebook.size))
        chunks = [codebook.astype("<f4").tobytes()]
        head["codes"], code_bits = _stream(codes, 1 << bits, chunks)
        return head, chunks, _costs(n, n, n, bits, 0, 8 * sum(map(len, chunks)), codebook.size)
    values = flat[positions]
    if bits is None:
        width = width or sparse.best_width(positions, [len(positions)], value_bits=32)
        symbols, stored = sparse.encode(positions, values, width)
        head.update(enc="sparse-f", width=width)
        chunks = []
        head["index"], _ = _stream(symbols, 1 << width, chunks)
        chunks.append(stored.astype("<f4").tobytes())
        head["entries"] = int(stored.size)
        return head, chunks, _costs(n, positions.size, stored.size, 32, width, 8 * sum(map(len, chunks)))
    codebook, codes = quantize.codebook_for(values, (1 << bits) - 1)
    del values
    codes = codes.astype(np.int32)
    codes += 1                                          # code 0: the filler's zero
    if width is None:
        width = sparse.best_width(positions, np.bincount(codes, minlength=codebook.size + 1))
    symbols, stored = sparse.encode(positions, codes, width)
    head.update(enc="sparse-q", bits=bits, width=width, k=int(codebook.size) + 1)
    chunks = [np.concatenate([[0.0], codebook]).astype("<f4").tobytes()]
    head["index"], _ = _stream(symbols, 1 << width, chunks)
    head["codes"], _ = _stream(stored, 1 << bits, chunks)
    return head, chunks, _costs(n, positions.size, stored.size, bits, width, 8 * sum(map(len, chunks)),
                                codebook.size + 1)


def _stream(symbols, alphabet, chunks):
    """Append a Huffman stream's three sections (code lengths, block sizes, bits) to ``chunks``."""
    counts = np.bincount(symbols, minlength=alphabet)
    lengths = huffman.code_lengths(counts)
    data, blocks = huffman.encode(symbols, lengths)
    chunks += [huffman.pack_lengths(lengths), blocks.astype("<u2").tobytes(), data]
    return {"n": int(symbols.size), "bytes": len(data)}, huffman.encoded_bits(counts, lengths)


def _costs(params, kept, entries, bits, width, huffman_bits, codebook=0):
    """The paper's storage accounting of one blob, in bytes: after pruning (kept weights as
    float32 with fixed-width indices, fillers counted), after quantization (fixed-width codes
    and indices, and the codebook) and as stored (Huffman coded, with its tables)."""
    return {"params": params, "kept": kept, "entries": entries, "bits": bits, "width": width,
            "dense": 4 * params,
            "pruned": (entries * (32 + width) + 7) // 8,
            "quantized": (entries * (bits + width) + 7) // 8 + 4 * codebook,
            "stored": (huffman_bits + 7) // 8}


def decode(head, buf, offset):
    """(array, new offset): the blob described by ``head`` whose sections start at ``offset``."""
    shape = tuple(head["shape"])
    n = int(np.prod(shape, dtype=np.int64))
    enc = head["enc"]
    if enc == "raw":
        values, offset = _floats(buf, offset, n)
        return values.reshape(shape), offset
    if enc in ("dense-q", "sparse-q"):
        codebook, offset = _floats(buf, offset, head["k"])
    if enc == "dense-q":
        codes, offset = _read_stream(head["codes"], 1 << head["bits"], buf, offset)
        _check_codes(codes, codebook.size)
        return codebook[codes].reshape(shape), offset
    index, offset = _read_stream(head["index"], 1 << head["width"], buf, offset)
    if enc == "sparse-q":
        codes, offset = _read_stream(head["codes"], 1 << head["bits"], buf, offset)
        if codes.size != index.size:
            raise ValueError("its index and code streams differ in length")
        _check_codes(codes, codebook.size)
        positions, codes = sparse.decode(index, codes, n)
        values = codebook[codes]
    elif enc == "sparse-f":
        stored, offset = _floats(buf, offset, head["entries"])
        if stored.size != index.size:
            raise ValueError("its index and value streams differ in length")
        positions, values = sparse.decode(index, stored, n)
    else:
        raise ValueError(f"unknown coding '{enc}'")
    out = np.zeros(n, dtype=np.float32)
    out[positions] = values
    return out.reshape(shape), offset


def _check_codes(codes, k):
    if codes.size and int(codes.max()) >= k:
        raise ValueError(f"a code ({int(codes.max())}) past its codebook of {k}")


def _floats(buf, offset, count):
    end = offset + 4 * int(count)
    if end > len(buf):
        raise ValueError("its values run past the payload")
    return np.frombuffer(buf[offset:end], dtype="<f4").astype(np.float32), end


def _read_stream(head, alphabet, buf, offset):
    count = int(head["n"])
    table = (5 * alphabet + 7) // 8
    blocks = -(-count // huffman.BLOCK)
    end = offset + table + 2 * blocks + int(head["bytes"])
    if end > len(buf):
        raise ValueError("its streams run past the payload")
    lengths = huffman.unpack_lengths(bytes(buf[offset:offset + table]), alphabet)
    offset += table
    block_bits = np.frombuffer(buf[offset:offset + 2 * blocks], dtype="<u2").astype(np.int64)
    offset += 2 * blocks
    symbols = huffman.decode(bytes(buf[offset:end]), lengths, count, block_bits)
    return symbols, end
