"""Does a sparse InnerProduct forward pay on the CPU? AlexNet's fc6 shape (4096 x 9216), weights
pruned at random to 9%, 5% and 2% kept, batches 1, 8 and 64: the dense GEMM firecaffe runs (NumPy
on OpenBLAS) against two sparse forwards over CSR weights, NumPy (a gather, a multiply and
add.reduceat per row) and SciPy's compiled CSR product (SciPy is not a firecaffe dependency: the
peer is measured only where it is installed). Best of 5, same process, same threads.

    python benchmarks/sparse_ip.py [--threads 2]
"""
import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

N, K = 4096, 9216


def to_csr(w):
    rows, cols = np.nonzero(w)
    indptr = np.zeros(w.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=w.shape[0]), out=indptr[1:])
    return w[rows, cols], cols.astype(np.int32), indptr


def numpy_csr_forward(csr, x):
    data, cols, indptr = csr
    starts = indptr[:-1]
    full = indptr[1:] > starts
    out = np.zeros((x.shape[0], starts.size), np.float32)
    out[:, full] = np.add.reduceat(x[:, cols] * data, starts[full], axis=1)
    return out


def best_ms(fn, reps=5):
    fn()
    times = []
    for _ in range(reps):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return 1e3 * min(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    try:
        import scipy.sparse as sparse
    except ImportError:
        sparse = None
    gen = np.random.default_rng(0)
    dense_w = gen.standard_normal((N, K), dtype=np.float32)
    print(f"fc6 {N}x{K}, {args.threads} threads; ms per forward (best of 5)")
    print(f"{'kept':>6}{'batch':>7}{'dense':>10}{'numpy csr':>12}{'scipy csr':>12}{'dense/scipy':>13}")
    with threadpool_limits(args.threads):
        for density in (0.09, 0.05, 0.02):
            w = np.where(gen.random((N, K)) < density, dense_w, 0).astype(np.float32)
            csr = to_csr(w)
            matrix = sparse.csr_matrix(w) if sparse is not None else None
            for batch in (1, 8, 64):
                x = gen.standard_normal((batch, K), dtype=np.float32)
                want = x @ w.T
                np.testing.assert_allclose(numpy_csr_forward(csr, x), want, rtol=1e-3, atol=1e-3)
                dense = best_ms(lambda: x @ w.T)
                mine = best_ms(lambda: numpy_csr_forward(csr, x)) if batch <= 8 else float("nan")
                theirs = best_ms(lambda: (matrix @ x.T).T) if matrix is not None else float("nan")
                print(f"{100 * density:>5.0f}%{batch:>7}{dense:>10.2f}{mine:>12.2f}{theirs:>12.2f}"
                      f"{dense / theirs:>12.1f}x")


if __name__ == "__main__":
    main()
