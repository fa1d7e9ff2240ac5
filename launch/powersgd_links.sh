#!/usr/bin/env bash
# PowerSGD's bytes on the links' own counters (firecaffe cluster, needs root): one ring allreduce of a
# net's gradient (AlexNet's by default, with its own weight shapes) uncompressed and with --compress
# powersgd:4 on 4 emulated nodes, each between two readings of every node's interface counters
# (`cluster status --json`):
#
#   launch/powersgd_links.sh OUTDIR
#   NET=nets/vgg16/deploy.prototxt NODES=8 LINK=1G launch/powersgd_links.sh /tmp/pl
#
# Writes OUTDIR/{before,after}_{none,powersgd}.json (the counters) and OUTDIR/bench_{none,powersgd}.json
# (`bench comm --json`); launch/doc_blocks.py's powersgd-links block sums the links' bytes.
set -euo pipefail
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
[ $# -eq 1 ] || usage
case "$1" in -h|--help) usage ;; esac
OUT="$1"; NET="${NET:-nets/alexnet/deploy.prototxt}"; NODES="${NODES:-4}"; LINK="${LINK:-1G}"; NAME="${NAME:-fcpl}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" FIRECAFFE_NO_PROGRESS=1 FIRECAFFE_WAIT="${FIRECAFFE_WAIT:-sleep}"
mkdir -p "$OUT"
python -m firecaffe cluster up --nodes "$NODES" --link "$LINK" --mtu 9000 --name "$NAME"
trap 'python -m firecaffe cluster down --name "$NAME"' EXIT
for codec in none powersgd:4; do
    tag="${codec%%:*}"
    python -m firecaffe cluster status --name "$NAME" --json > "$OUT/before_$tag.json"
    timeout 900 python -m firecaffe cluster exec --name "$NAME" -- python -m firecaffe bench comm --comm ring \
        --net "$NET" --compress "$codec" --repeats 1 --warmup 0 --quiet --json "$OUT/bench_$tag.json"
    python -m firecaffe cluster status --name "$NAME" --json > "$OUT/after_$tag.json"
done
