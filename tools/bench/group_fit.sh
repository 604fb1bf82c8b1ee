#!/usr/bin/env bash
# `group fit`'s shared space, streamed, at growing sizes: each size a fresh process that reads
# (here: generates) every subject's trials block by block, takes one spectrum and GCV α per
# subject, then the randomized SVD and the maps; time and peak memory (VmHWM) beside the bound
# computed from the sizes before the fit. Then the array form (`group fit --shard` per subject,
# `--merge`, as `brainrecon slurm submit -- group fit` runs them), run here one process after
# another: each subject's statistics (means, spectrum, GCV α, written float64 through an output
# folder), then the merge (the statistics read back, the randomized SVD and the maps); each
# process's time and peak memory (VmHWM). Then the merge's encoder (`--measure group-encoder`:
# features → space from row blocks of the distinct images, 3 trials each, as `group fit`
# fits it) at each encoder size, each a fresh process under /usr/bin/time -v.
#   bash tools/bench/group_fit.sh
# Env: BENCH_SIZES (space-separated SUBJECTSxTRIALS, default "7x250 7x1000 7x4000", "" for
#      none; NSD's full size is 7x27000), BENCH_ARRAY_SIZES (the array form's, default
#      "7x1000", "" for none), BENCH_ENCODER_SIZES (the encoder's, default "7x1000 7x2000",
#      "" for none; 7x4000 takes about 26 min on 2 shared cores), BENCH_VOXELS (15724),
#      BENCH_TARGETS (75520), BENCH_GROUP_K (1024), BENCH_THREADS (2), BENCH_DATA_DIR
#      (target/bench-group).
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=${BENCH_THREADS:-2}
data=${BENCH_DATA_DIR:-target/bench-group}
mkdir -p "$data"

cargo build --release --locked -p brainrecon-cli
out="$data/group_fit.jsonl"
: > "$out"
for size in ${BENCH_SIZES-7x250 7x1000 7x4000}; do
  subjects=${size%x*}
  trials=${size#*x}
  RAYON_NUM_THREADS=$threads "${CARGO_TARGET_DIR:-target}"/release/brainrecon bench group-adapt \
    --no-adapt --subjects "$subjects" --group-images "$trials" \
    --voxels "${BENCH_VOXELS:-15724}" --targets "${BENCH_TARGETS:-75520}" \
    --group-k "${BENCH_GROUP_K:-1024}" --threads "$threads" --data-dir "$data" --json >> "$out"
done
array="$data/group_fit_array.jsonl"
: > "$array"
for size in ${BENCH_ARRAY_SIZES-7x1000}; do
  subjects=${size%x*}
  trials=${size#*x}
  for step in $(seq -f "group-stats:%g" 0 $((subjects - 1))) group-merge; do
    RAYON_NUM_THREADS=$threads "${CARGO_TARGET_DIR:-target}"/release/brainrecon bench group-adapt \
      --no-adapt --subjects "$subjects" --group-images "$trials" \
      --voxels "${BENCH_VOXELS:-15724}" --targets "${BENCH_TARGETS:-75520}" \
      --group-k "${BENCH_GROUP_K:-1024}" --threads "$threads" --data-dir "$data" \
      --measure "$step" >> "$array"
  done
done
encoder="$data/group_fit_encoder.jsonl"
: > "$encoder"
for size in ${BENCH_ENCODER_SIZES-7x1000 7x2000}; do
  subjects=${size%x*}
  trials=${size#*x}
  uptime
  RAYON_NUM_THREADS=$threads /usr/bin/time -v "${CARGO_TARGET_DIR:-target}"/release/brainrecon \
    bench group-adapt --no-adapt --subjects "$subjects" --group-images "$trials" \
    --voxels "${BENCH_VOXELS:-15724}" --targets "${BENCH_TARGETS:-75520}" \
    --group-k "${BENCH_GROUP_K:-1024}" --threads "$threads" --data-dir "$data" \
    --measure group-encoder >> "$encoder" 2> "$data/time-encoder-$size.txt"
  grep -E "Elapsed|Maximum resident" "$data/time-encoder-$size.txt"
done
grep -m1 "model name" /proc/cpuinfo
cat "$out" "$array" "$encoder"
