#!/usr/bin/env bash
# Sweep rank counts and reduction strategies for one net (or a list of sizes) and collect the
# `firecaffe bench comm --json` results in one folder, then write its report:
#
#   launch/scaling.sh OUTDIR [NET.prototxt]
#   launch/scaling.sh results/googlenet nets/googlenet/deploy.prototxt
#   RANKS="2 4 8 16" COMMS=tree,ring,mpi SIZES=1M,16M,64M launch/scaling.sh results/sizes
#
# Each rank count p is its own job of p ranks (`p<p>.json`); ps runs as p workers plus
# PS_SERVERS server ranks (`ps_p<p>.json`). At the end `firecaffe bench report OUTDIR`
# writes OUTDIR/README.md and OUTDIR/scaling.png (tables, figure, fitted model and its error).
#
# Environment:
#   RANKS        rank counts (ps: workers) to sweep (default "2 4 8")
#   COMMS        strategies besides ps (default tree,ring,mpi); PS=0 leaves ps out
#   PS_SERVERS   parameter-server ranks for ps (default 1)
#   SIZES        message sizes when no NET is given (default 4K,64K,1M,4M,16M,64M)
#   REPEATS      timed calls per point (default 10); WARMUP untimed ones (default 2)
#   MPIEXEC      launcher, called as "$MPIEXEC -n P ..." (default: mpiexec; srun in scaling.sbatch)
#   BENCH        the bench command (default "firecaffe bench"; e.g. "python -m firecaffe bench")
#   OMP_NUM_THREADS  BLAS threads per rank (default 1: ranks usually outnumber cores)
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
case "$1" in -h|--help) usage ;; esac
OUT="$1"
NET="${2:-}"
RANKS="${RANKS:-2 4 8}"
COMMS="${COMMS:-tree,ring,mpi}"
PS="${PS:-1}"
PS_SERVERS="${PS_SERVERS:-1}"
REPEATS="${REPEATS:-10}"
WARMUP="${WARMUP:-2}"
MPIEXEC="${MPIEXEC:-mpiexec}"
BENCH="${BENCH:-firecaffe bench}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

for p in $RANKS; do
    [[ "$p" =~ ^[1-9][0-9]*$ ]] || { echo "scaling.sh: RANKS must be positive integers, got '$p'" >&2; exit 2; }
done
[[ "$PS_SERVERS" =~ ^[1-9][0-9]*$ ]] || { echo "scaling.sh: PS_SERVERS must be a positive integer" >&2; exit 2; }
if [ -n "$NET" ]; then
    [ -f "$NET" ] || { echo "scaling.sh: no such net prototxt: $NET" >&2; exit 2; }
    WHAT=(--net "$NET")
else
    WHAT=(--sizes "${SIZES:-4K,64K,1M,4M,16M,64M}")
fi
mkdir -p "$OUT"
COMMON=(--repeats "$REPEATS" --warmup "$WARMUP" --quiet "${WHAT[@]}")

for p in $RANKS; do
    if [ -n "$COMMS" ]; then
        echo "== $COMMS on $p ranks" >&2
        $MPIEXEC -n "$p" $BENCH comm --comm "$COMMS" "${COMMON[@]}" --json "$OUT/p$p.json"
    fi
    if [ "$PS" = 1 ]; then
        echo "== ps: $p workers + $PS_SERVERS server(s)" >&2
        $MPIEXEC -n "$((p + PS_SERVERS))" $BENCH comm --comm ps --ps-servers "$PS_SERVERS" "${COMMON[@]}" \
            --json "$OUT/ps_p$p.json"
    fi
done
$BENCH report "$OUT" --out "$OUT/README.md"
echo "scaling.sh: results, $OUT/README.md and $OUT/scaling.png written" >&2
