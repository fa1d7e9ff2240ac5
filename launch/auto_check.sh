#!/usr/bin/env bash
# Check `--comm auto` on an emulated cluster (firecaffe cluster, needs root) against an exhaustive sweep:
#
#   launch/auto_check.sh OUTDIR
#   STEPS="probe train" RATES=1G launch/auto_check.sh /tmp/auto
#
# Steps (STEPS, default "sweep probe train"), each at every link rate of RATES (default "100M 1G"):
#   sweep  `bench comm --sweep` of tree, dbtree, ring, mpi (and ps at the small size) at squeezenet_cifar's
#          gradient (2,916,136 bytes) on 16 nodes and at AlexNet's (243,860,896 bytes) on ALEX_NODES nodes
#          (default: 8 at 100M, where one call takes 20-70 s, 16 at 1G): OUTDIR/{squeeze,alexnet}_<rate>.json
#   probe  `bench probe` (the probe `--comm auto` runs without --profile) on 2, 4, 8, 16 nodes, printing
#          its choice for both gradients: OUTDIR/probe_<rate>_<nodes>.{json,log}
#   train  `train --comm auto` of squeezenet_cifar (global batch 128, ITERS iterations, synthetic data) on
#          2, 4, 8 nodes, without a profile (the probe): OUTDIR/train_<rate>_<nodes>.log
# Then `python launch/auto_table.py OUTDIR` prints the tables of docs/scaling.md.
# Every step appends the time and `uptime` (the machine's load) to OUTDIR/load.log.
set -euo pipefail
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
[ $# -eq 1 ] || usage
case "$1" in -h|--help) usage ;; esac
OUT="$1"; HERE="$(cd "$(dirname "$0")" && pwd)"; REPO="$(dirname "$HERE")"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
STEPS="${STEPS:-sweep probe train}"; RATES="${RATES:-100M 1G}"; ITERS="${ITERS:-8}"; NAME="${NAME:-fcauto}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" FIRECAFFE_NO_PROGRESS=1
mkdir -p "$OUT"
log() { echo "$(date -u +%FT%T) $* | $(uptime)" >> "$OUT/load.log"; echo "== $* ($(date -u +%T))" >&2; }
for rate in $RATES; do
    for step in $STEPS; do
        case "$step" in
        sweep)
            log "sweep squeezenet_cifar $rate"
            RUNS="$rate:2916136" NODES=16 NAME="$NAME" COMMS=tree,dbtree,ring,mpi,ps TAG=squeeze_ \
                "$HERE/cluster_sweep.sh" "$OUT"
            alex="${ALEX_NODES:-$([ "$rate" = 100M ] && echo 8 || echo 16)}"
            log "sweep alexnet $rate on $alex nodes"
            RUNS="$rate:243860896" NODES="$alex" NAME="$NAME" COMMS=tree,dbtree,ring,mpi REPEATS=2 \
                WARMUP="$([ "$rate" = 100M ] && echo 0 || echo 1)" TAG=alexnet_ "$HERE/cluster_sweep.sh" "$OUT" ;;
        probe)
            for nodes in 2 4 8 16; do
                log "probe $rate $nodes nodes"
                python -m firecaffe cluster run --nodes "$nodes" --link "$rate" --mtu 9000 --name "$NAME" -- \
                    python -m firecaffe bench probe --sizes 2916136,243860896 --out "$OUT/probe_${rate}_$nodes.json" \
                    > "$OUT/probe_${rate}_$nodes.log" 2>&1 || echo "   (probe failed: $OUT/probe_${rate}_$nodes.log)" >&2
            done ;;
        train)      # in OUTDIR/run: the nets, and 512 synthetic CIFAR images (data/, as the net reads them)
            run="$(cd "$OUT" && pwd)/run"; mkdir -p "$run"; ln -sfn "$REPO/nets" "$run/nets"
            [ -f "$run/data/cifar10_train_h5.txt" ] || (cd "$run" && python nets/squeezenet_cifar/make_data.py --synthetic 512)
            sed -e "s/^max_iter:.*/max_iter: $ITERS/; s/^display:.*/display: 1/; s/^snapshot:.*/snapshot: 0/" \
                -e "s/^test_interval:.*/test_interval: 0/" nets/squeezenet_cifar/solver.prototxt > "$run/solver.prototxt"
            for nodes in 2 4 8; do
                log "train --comm auto $rate $nodes nodes"
                (cd "$run" && timeout 600 python -m firecaffe cluster run --nodes "$nodes" --link "$rate" --mtu 9000 \
                    --name "$NAME" -- python -m firecaffe train --solver solver.prototxt --comm auto --global-batch 128 \
                    --snapshot-prefix snap) > "$OUT/train_${rate}_$nodes.log" 2>&1 \
                    || echo "   (exit $?: $OUT/train_${rate}_$nodes.log)" >&2
            done ;;
        *) echo "unknown step $step" >&2; exit 2 ;;
        esac
    done
done
log done
