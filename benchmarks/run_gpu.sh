#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and CuPy: the GPU tests, then the GPU benchmark.
#   bash benchmarks/run_gpu.sh            # results in $OUT, else ./gpu_results
# Steps go on after a failure so one run yields every figure it can; the exit
# status is non-zero if any step failed. Needs: CuPy for the machine's CUDA
# (pip install 'firecaffe[gpu]', or cupy-cuda13x for CUDA 13), optionally torch.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu_results}"
mkdir -p "$OUT"
PY="${PYTHON:-python}"
status=0

{
  echo "== $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null || echo no-git)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || echo "nvidia-smi not found"
  "$PY" -c "import cupy; print('cupy', cupy.__version__, 'CUDA runtime', cupy.cuda.runtime.runtimeGetVersion(), 'devices', cupy.cuda.runtime.getDeviceCount())" 2>&1
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())" 2>&1
} 2>&1 | tee "$OUT/environment.txt"

if ! "$PY" -c "import cupy; cupy.cuda.runtime.getDeviceCount()" >/dev/null 2>&1; then
  echo "CuPy cannot reach a GPU here: install it (pip install 'firecaffe[gpu]') and run again" | tee -a "$OUT/environment.txt"
  exit 2
fi

echo "== kernel compile and CPU-shim tests" | tee "$OUT/tests.log"
"$PY" -m pytest -q -rs -p no:cacheprovider tests/kernels 2>&1 | tee -a "$OUT/tests.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== GPU tests (CuPy against NumPy)" | tee -a "$OUT/tests.log"
"$PY" -m pytest -q -rs -p no:cacheprovider -m gpu tests/gpu --junitxml="$OUT/gpu_tests.xml" 2>&1 | tee -a "$OUT/tests.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== benchmark" | tee "$OUT/bench.log"
"$PY" benchmarks/gpu_bench.py --out "$OUT" "$@" 2>&1 | tee -a "$OUT/bench.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "results in $OUT (exit status $status)"
exit $status
