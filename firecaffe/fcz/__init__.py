"""The .fcz weights file (Deep Compression's storage): relative sparse indices, shared weights
(k-means codebooks), Huffman coding, in a versioned container with a checksum.

Lossless given the weights it is handed (already pruned and quantized: ``fcz.quantize`` makes
codebooks when they are not); the lossy stages and retraining live in ``firecaffe.compress``.
"""
from .format import FczError, MAGIC, VERSION, encode, looks_like, parse, read, write

__all__ = ["FczError", "MAGIC", "VERSION", "encode", "looks_like", "parse", "read", "write"]
