#!/bin/bash
# firecaffe against real BVLC Caffe (shared/caffe-oracle/build.sh) on one net prototxt:
# `caffe time` and `firecaffe time` (its peer command), alternated ROUNDS times in one run,
# each round ITER iterations of forward + backward; prints each "Average Forward-Backward"
# and the load average before each.
#   bash benchmarks/caffe_time_peer.sh NET.prototxt [ITER=5] [ROUNDS=3]
# Both run with OPENBLAS_CORETYPE=SkylakeX where the CPU has AVX-512 (Debian's OpenBLAS
# 0.3.21 does not know newer models and falls back to its Prescott kernels otherwise; an
# environment may also pin a core type for NumPy's OpenBLAS, as Haswell was on one machine
# here, which halves its GEMM rate), elsewhere with the environment's setting: the same
# kernels on both sides. Caffe with its default OpenBLAS threads (all cores), firecaffe
# with its defaults.
set -euo pipefail
NET=$1; ITER=${2:-5}; ROUNDS=${3:-3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CAFFE_ENV=${CAFFE_ORACLE_DIR:-$HOME/.cache/caffe-oracle}/caffe/env.sh
if grep -q avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX; fi
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(not set)} for both"
for r in $(seq "$ROUNDS"); do
  echo "round $r: $(uptime | sed 's/.*load/load/')"
  (source "$CAFFE_ENV"; GLOG_minloglevel=0 GLOG_logtostderr=1 \
     caffe time -model "$NET" -iterations "$ITER" 2>&1 | grep "Average Forward-Backward" | sed 's/.*]/  caffe    /')
  echo "  ($(uptime | sed 's/.*load/load/'))"
  (cd "$ROOT"; PYTHONPATH=$ROOT python -m firecaffe time --model "$NET" --iterations "$ITER" 2>&1 \
     | grep "Average Forward-Backward" | sed 's/.*]/  firecaffe/')
done
