"""Deep Compression (Han, Mao, Dally, ICLR 2016): pruning and trained quantization with retraining on
the Solver (observers of its step), the per-layer report and the sensitivity plot. The lossless part,
Huffman coding in the .fcz file, is ``firecaffe.fcz``; the command is ``firecaffe compress``."""
