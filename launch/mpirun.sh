#!/usr/bin/env bash
# Train with NP MPI ranks on this machine (or inside an allocation): a thin wrapper over
#
#   mpiexec -n NP firecaffe train SOLVER [ARGS...]
#
# Usage:
#   launch/mpirun.sh NP SOLVER [firecaffe train args...]
#   launch/mpirun.sh 4 nets/lenet_digits/solver.prototxt --comm tree --max-iter 200
#
# SOLVER may also be a bare net prototxt with solver flags (see `firecaffe train --help`).
#
# What it adds to plain mpiexec:
#   * the mpiexec that belongs to the MPI mpi4py was built against: the one next to the
#     Python interpreter (PyPI's `mpich` wheel puts it there), else the first on PATH;
#   * one BLAS/OpenMP thread per rank when NP ranks would oversubscribe the cores
#     (else cores/NP threads each), so NumPy's BLAS in 4 ranks on 2 cores does not run 8
#     threads fighting for them. Values you set yourself are kept.
#
# Environment:
#   FIRECAFFE_MPIEXEC       mpiexec to use (e.g. mpirun, or a path)
#   FIRECAFFE_MPIEXEC_ARGS  extra mpiexec arguments, word-split (e.g. "-hosts a,b -ppn 8")
#   FIRECAFFE_PYTHON        interpreter that runs firecaffe (default: python3)
#   FIRECAFFE_DRY_RUN=1     print the command and the thread settings, run nothing
#   OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS: threads per rank (kept if set)
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 2 ] || usage
case "$1" in -h|--help) usage ;; esac
NP="$1"; shift
[[ "$NP" =~ ^[1-9][0-9]*$ ]] || { echo "mpirun.sh: NP must be a positive integer, got '$NP'" >&2; exit 2; }
SOLVER="$1"; shift
[ -f "$SOLVER" ] || { echo "mpirun.sh: no such solver or net prototxt: $SOLVER" >&2; exit 2; }

PYTHON="${FIRECAFFE_PYTHON:-python3}"
if [ -z "${FIRECAFFE_MPIEXEC:-}" ]; then
    bindir="$("$PYTHON" -c 'import os, sys; print(os.path.dirname(sys.executable))' 2>/dev/null || true)"
    if [ -n "$bindir" ] && [ -x "$bindir/mpiexec" ]; then
        FIRECAFFE_MPIEXEC="$bindir/mpiexec"
    else
        FIRECAFFE_MPIEXEC=mpiexec
    fi
fi
# firecaffe's console script if it runs with this Python, else the module.
if command -v firecaffe >/dev/null 2>&1 && [ -z "${FIRECAFFE_PYTHON:-}" ]; then
    TRAIN=(firecaffe train)
else
    TRAIN=("$PYTHON" -m firecaffe train)
fi

cores=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
threads=$(( cores / NP )); [ "$threads" -ge 1 ] || threads=1
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$threads}"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-$OMP_NUM_THREADS}"
export MKL_NUM_THREADS="${MKL_NUM_THREADS:-$OMP_NUM_THREADS}"

# shellcheck disable=SC2206  # word-splitting the extra arguments is the point
CMD=("$FIRECAFFE_MPIEXEC" -n "$NP" ${FIRECAFFE_MPIEXEC_ARGS:-} "${TRAIN[@]}" "$SOLVER" "$@")
if [ "${FIRECAFFE_DRY_RUN:-0}" = 1 ]; then
    echo "OMP_NUM_THREADS=$OMP_NUM_THREADS OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS MKL_NUM_THREADS=$MKL_NUM_THREADS"
    printf '%q ' "${CMD[@]}"; echo
    exit 0
fi
exec "${CMD[@]}"
