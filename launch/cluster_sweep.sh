#!/usr/bin/env bash
# Measure the reduction strategies on an emulated cluster (firecaffe cluster, needs root): one
# `firecaffe bench comm --sweep` job per link rate on NODES nodes (one rank each), measuring 2, 4,
# 8, ... nodes in that job; then fit the cost model to all of it:
#
#   launch/cluster_sweep.sh OUTDIR
#   RUNS="1G:1M,16M" NODES=8 COMMS=tree,ring launch/cluster_sweep.sh /tmp/quick
#   RUNS="1G:29M" NODES=16 COMMS=tree,ps TAG=nin launch/cluster_sweep.sh docs/scaling/cluster
#
# Writes OUTDIR/<TAG><rate>.json per run (`bench comm --json` records) and OUTDIR/fit.txt
# (`bench fit --per-strategy` over every JSON file in OUTDIR).
#
# Environment:
#   RUNS     link rate and its sizes, "RATE:SIZES" separated by spaces
#            (default "100M:1M,4M,16M 1G:1M,4M,16M,64M": low rates keep 2 cores link-bound)
#   NODES    nodes of each cluster (default 16); PPN ranks per node (default 1)
#   MTU      largest frame on the links (default 9000, jumbo frames: at 1500 the 2 cores of a
#            16-node emulation spend most of their time carrying packets, not the links)
#   FIRECAFFE_WAIT  how the strategies wait (default here: sleep, since 16 nodes' ranks share this
#            machine's cores and a spinning rank takes the core the packet path needs; spin to compare)
#   COMMS    strategies (default tree,ring,mpi,ps); RANKS "2,4" instead of the sweep 2, 4, 8, ... NODES
#   REPEATS  timed calls per point (default 3); WARMUP untimed ones (default 1)
#   INTER    --inter for hier (default tree); COMPRESS --compress CODEC for every strategy (default none)
#   TAG      prefix of the JSON names (default empty); NAME cluster name (default fcs)
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
[ $# -eq 1 ] || usage
case "$1" in -h|--help) usage ;; esac
OUT="$1"
RUNS="${RUNS:-100M:1M,4M,16M 1G:1M,4M,16M,64M}"
NODES="${NODES:-16}"
PPN="${PPN:-1}"
MTU="${MTU:-9000}"
COMMS="${COMMS:-tree,ring,mpi,ps}"
REPEATS="${REPEATS:-3}"
WARMUP="${WARMUP:-1}"
TAG="${TAG:-}"
NAME="${NAME:-fcs}"
INTER="${INTER:-tree}"
COMPRESS="${COMPRESS:-none}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" FIRECAFFE_NO_PROGRESS=1 FIRECAFFE_WAIT="${FIRECAFFE_WAIT:-sleep}"
mkdir -p "$OUT"
if [ -n "${RANKS:-}" ]; then WHICH=(--ranks "$RANKS"); else WHICH=(--sweep); fi

for run in $RUNS; do
    rate="${run%%:*}"
    sizes="${run#*:}"
    echo "== $COMMS, $sizes on $NODES nodes x $PPN at $rate, MTU $MTU ($(date -u +%T))" >&2
    python -m firecaffe cluster run --nodes "$NODES" --link "$rate" --ppn "$PPN" --mtu "$MTU" --name "$NAME" -- \
        python -m firecaffe bench comm --comm "$COMMS" --sizes "$sizes" "${WHICH[@]}" \
        --inter "$INTER" --compress "$COMPRESS" --repeats "$REPEATS" --warmup "$WARMUP" --quiet --json "$OUT/$TAG$rate.json"
done
python -m firecaffe bench fit "$OUT"/*.json --per-strategy > "$OUT/fit.txt" || true
echo "== done ($(date -u +%T)): $OUT" >&2
