#!/usr/bin/env bash
# Measure --bucket-mb overlap on an emulated cluster (firecaffe cluster, needs root): the same short
# training job without buckets, with buckets whose thread waits in MPI's blocking calls (spin), and
# with buckets whose thread sleeps between tests (the default), interleaved ROUNDS times so that the
# three see the same load; prints the medians per mode (launch/overlap_table.py):
#
#   launch/overlap_links.sh OUTDIR
#   NODES=4 LINK=100M COMM=ring BUCKET_MB=1 ITERS=8 ROUNDS=3 launch/overlap_links.sh /tmp/ov
#
# Needs the net's data: NET=nets/squeezenet_cifar (default) reads data/cifar10_*_h5.txt relative
# to the current directory (`python nets/squeezenet_cifar/make_data.py --synthetic 512` writes them).
# Every run is bounded by `timeout` (RUN_TIMEOUT seconds, default 300). MTU: the links' largest
# frame (default 9000, as launch/cluster_sweep.sh).
set -euo pipefail
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
[ $# -eq 1 ] || usage
case "$1" in -h|--help) usage ;; esac
OUT="$1"
HERE="$(cd "$(dirname "$0")" && pwd)"
NET="${NET:-nets/squeezenet_cifar}"
NODES="${NODES:-4}"; LINK="${LINK:-100M}"; PPN="${PPN:-1}"; COMM="${COMM:-ring}"
BUCKET_MB="${BUCKET_MB:-1}"; ITERS="${ITERS:-8}"; ROUNDS="${ROUNDS:-3}"; BATCH="${BATCH:-128}"
RUN_TIMEOUT="${RUN_TIMEOUT:-300}"; NAME="${NAME:-fcov}"; MTU="${MTU:-9000}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" FIRECAFFE_NO_PROGRESS=1
mkdir -p "$OUT"
sed -e "s/^max_iter:.*/max_iter: $ITERS/; s/^display:.*/display: 1/; s/^average_loss:.*/average_loss: 1/" \
    -e "s/^snapshot:.*/snapshot: 0/; s/^test_interval:.*/test_interval: 0/" "$NET/solver.prototxt" > "$OUT/solver.prototxt"
for round in $(seq 1 "$ROUNDS"); do
    for mode in none spin sleep; do
        mb="$BUCKET_MB"; [ "$mode" = none ] && mb=0
        echo "== round $round: $mode ($(date -u +%T))" >&2
        FIRECAFFE_BUCKET_WAIT="$mode" timeout "$RUN_TIMEOUT" python -m firecaffe cluster run --nodes "$NODES" \
            --link "$LINK" --ppn "$PPN" --mtu "$MTU" --name "$NAME" -- python -m firecaffe train --solver "$OUT/solver.prototxt" \
            --comm "$COMM" --global-batch "$BATCH" --bucket-mb "$mb" > "$OUT/$mode.$round.log" 2>&1 \
            || echo "   (exit $?: see $OUT/$mode.$round.log)" >&2
    done
done
python "$HERE/overlap_table.py" "$OUT" | tee "$OUT/table.txt"
