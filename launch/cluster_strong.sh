#!/usr/bin/env bash
# Strong scaling end to end on an emulated cluster (firecaffe cluster, needs root): train one net
# at a fixed global batch on 1 node and on each of NODES_LIST emulated nodes (one rank each), then
# compare each measured time per iteration with `firecaffe analyze --workers --profile` fed with
# the 1-node time (--compute-ms) and a profile fitted on the same links:
#
#   launch/cluster_strong.sh OUTDIR PROFILE.json
#   NODES_LIST="2 4 8" LINK=100M COMM=ring BATCH=128 ITERS=8 launch/cluster_strong.sh /tmp/ss profile.json
#
# COMPRESS (default none): train with --compress COMPRESS and predict with analyze --compress (the
# profile then needs that codec's delta: bench fit on bench comm --compress records).
# MTU: the links' largest frame (default 9000, as launch/cluster_sweep.sh: compare like with like).
# COMPUTE_CORES (default: this machine's core count) goes to --compute-cores: the emulated nodes
# share this machine's cores, so compute cannot speed up more than that many times.
# Needs the net's data: NET=nets/squeezenet_cifar (default) reads data/cifar10_*_h5.txt relative
# to the current directory (`python nets/squeezenet_cifar/make_data.py --synthetic 512` writes them).
# SMALL_BATCH (default BATCH/8): a second 1-node run at that global batch (OUTDIR/1-small.log) splits T1
# into what shrinks with the batch and what every worker pays in full (analyze --fixed-ms).
# Every run is bounded by `timeout` (RUN_TIMEOUT seconds, default 600). Writes OUTDIR/<P>.log per
# run and OUTDIR/table.md (launch/strong_table.py).
set -euo pipefail
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
[ $# -eq 2 ] || usage
case "$1" in -h|--help) usage ;; esac
OUT="$1"; PROFILE="$2"
HERE="$(cd "$(dirname "$0")" && pwd)"
NET="${NET:-nets/squeezenet_cifar}"
NODES_LIST="${NODES_LIST:-2 4 8}"; LINK="${LINK:-100M}"; COMM="${COMM:-ring}"
ITERS="${ITERS:-8}"; BATCH="${BATCH:-128}"; RUN_TIMEOUT="${RUN_TIMEOUT:-600}"; NAME="${NAME:-fcss}"; MTU="${MTU:-9000}"
COMPRESS="${COMPRESS:-none}"; SMALL_BATCH="${SMALL_BATCH:-$((BATCH / 8))}"
COMPUTE_CORES="${COMPUTE_CORES:-$(nproc)}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" FIRECAFFE_NO_PROGRESS=1
mkdir -p "$OUT"
sed -e "s/^max_iter:.*/max_iter: $ITERS/; s/^display:.*/display: 1/; s/^average_loss:.*/average_loss: 1/" \
    -e "s/^snapshot:.*/snapshot: 0/; s/^test_interval:.*/test_interval: 0/" "$NET/solver.prototxt" > "$OUT/solver.prototxt"
echo "== 1 node ($(date -u +%T))" >&2
timeout "$RUN_TIMEOUT" python -m firecaffe train --solver "$OUT/solver.prototxt" --global-batch "$BATCH" \
    > "$OUT/1.log" 2>&1 || { echo "1-node run failed: see $OUT/1.log" >&2; exit 1; }
echo "== 1 node at global batch $SMALL_BATCH ($(date -u +%T))" >&2
timeout "$RUN_TIMEOUT" python -m firecaffe train --solver "$OUT/solver.prototxt" --global-batch "$SMALL_BATCH" \
    > "$OUT/1-small.log" 2>&1 || { echo "1-node run failed: see $OUT/1-small.log" >&2; exit 1; }
for nodes in $NODES_LIST; do
    echo "== $nodes nodes at $LINK, $COMM ($(date -u +%T))" >&2
    timeout "$RUN_TIMEOUT" python -m firecaffe cluster run --nodes "$nodes" --link "$LINK" --mtu "$MTU" --name "$NAME" -- \
        python -m firecaffe train --solver "$OUT/solver.prototxt" --comm "$COMM" --compress "$COMPRESS" \
        --global-batch "$BATCH" > "$OUT/$nodes.log" 2>&1 || echo "   (exit $?: see $OUT/$nodes.log)" >&2
done
python "$HERE/strong_table.py" "$OUT" "$NET/deploy.prototxt" "$PROFILE" "$COMM" "$COMPUTE_CORES" "$COMPRESS" | tee "$OUT/table.md"
