#!/usr/bin/env bash
# A new subject adapted into a group's shared space at NSD's size (15,724 voxels, 750 trials,
# 75,520 targets = z 16,384 + c 59,136), one fresh process per k, then the group's own fit.
#   bash tools/bench/group_adapt.sh
# Env: BENCH_K (256,1024), BENCH_THREADS (2), BENCH_GROUP_IMAGES (rows per subject of the group
#      fit, 1000; 0 skips it), BENCH_GROUP_K (1024), BENCH_DATA_DIR (target/bench-group).
# The issue's goal for the adapt: ≤ 60 s and ≤ 4 GB on 2 cores. The group fit holds every
# subject's X and Y in float64: 7 × 1000 rows at NSD's width is about 5 GB.
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=${BENCH_THREADS:-2}
data=${BENCH_DATA_DIR:-target/bench-group}
mkdir -p "$data"

cargo build --release --locked -p brainrecon-cli
RAYON_NUM_THREADS=$threads "${CARGO_TARGET_DIR:-target}"/release/brainrecon bench group-adapt \
  --k "${BENCH_K:-256,1024}" --threads "$threads" --subjects 7 \
  --group-images "${BENCH_GROUP_IMAGES:-1000}" --group-k "${BENCH_GROUP_K:-1024}" \
  --data-dir "$data" --json > "$data/group_adapt.json"
cat "$data/group_adapt.json"
