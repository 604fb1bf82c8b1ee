#!/usr/bin/env bash
# A c-sized ridge decoder (1350 training images × 8312 voxels → 59,136 targets, as the README's
# "Many targets" subject; GCV, float32) fitted by one process and as N shards on a one-node
# Slurm cluster (tools/slurm/one-node.sh, started and stopped here; root): wall from
# `slurm submit` to the merged model, each task's wall and peak RSS, the gaps Slurm adds.
#   bash tools/bench/slurm.sh [N …]          (default: 2 4 8)
# Env: BENCH_DATA_DIR (target/bench-data/slurm), BENCH_PYTHON (default .venv-bench/bin/python),
#      BENCH_CPUS_PER_TASK ("2 1": each task with both cores, one at a time; then one core
#      each, two at a time).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
shards=("$@")
[ ${#shards[@]} -gt 0 ] || shards=(2 4 8)
data=${BENCH_DATA_DIR:-target/bench-data/slurm}
data=$(mkdir -p "$data" && cd "$data" && pwd)
cpus_list=${BENCH_CPUS_PER_TASK:-2 1}
cargo build --release --locked -p brainrecon-cli
target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target="$root/$target" ;; esac
bin="$target/release/brainrecon"
python=${BENCH_PYTHON:-.venv-bench/bin/python}
if [ ! -x "$python" ]; then
  python3 -m venv .venv-bench
  .venv-bench/bin/pip install -r tools/bench/requirements.txt
  python=.venv-bench/bin/python
fi
if [ ! -f "$data/Y.npy" ]; then
  "$python" - "$data" <<'PY'
import sys
import numpy as np
out = sys.argv[1]
r = np.random.default_rng(0)
n, p, t = 1350, 8312, 59136
x = r.standard_normal((n, p), dtype=np.float32)
w = r.standard_normal((256, t), dtype=np.float32) / 16
y = x[:, :256] @ w + r.standard_normal((n, t), dtype=np.float32)
np.save(f"{out}/X.npy", x)
np.save(f"{out}/Y.npy", y.astype(np.float32))
PY
fi
state="$data/cluster"
bash tools/slurm/one-node.sh start "$state"
export SLURM_CONF="$state/slurm.conf"
trap 'bash "$root/tools/slurm/one-node.sh" stop "$state"' EXIT
# Each task's wall and peak RSS, through /usr/bin/time (which passes signals on).
cat > "$data/timed.sh" <<SH
#!/bin/bash
exec /usr/bin/time -f "wall_s=%e peak_rss_kb=%M" -a -o "$data/time-\${SLURM_JOB_ID}.txt" "$bin" "\$@"
SH
chmod +x "$data/timed.sh"
fit=(ridge fit --x "$data/X.npy" --y "$data/Y.npy" --cv gcv --precision f32)

cd "$data"
# The bytes of a fit depend on the matrix products' thread count, so each shard count is checked
# against one process with the threads each task has (RAYON_NUM_THREADS = --cpus-per-task).
for cpus in $cpus_list; do
  rm -rf "one-$cpus"
  RAYON_NUM_THREADS=$cpus /usr/bin/time -f "wall_s=%e peak_rss_kb=%M" -o "one-$cpus.time" \
    "$bin" "${fit[@]}" --out "one-$cpus" >/dev/null
  echo "one process, $cpus threads: $(cat "one-$cpus.time")"
  for n in "${shards[@]}"; do
    jobs="sharded-$n-cpus-$cpus"
    rm -rf "$jobs" "$jobs.slurm" time-*.txt
    start=$(date +%s.%N)
    "$bin" slurm submit --shards "$n" --cpus-per-task "$cpus" --binary "$data/timed.sh" \
      --jobs "$jobs.slurm" -- "${fit[@]}" --out "$jobs" >/dev/null
    until "$bin" slurm status --jobs "$jobs.slurm" --json | grep -q '"merge_state": "COMPLETED"'; do
      sleep 0.2
    done
    end=$(date +%s.%N)
    # /usr/bin/time writes its line after the process has ended
    until [ "$(cat time-*.txt 2>/dev/null | grep -c wall_s)" -ge $((n + 1)) ]; do sleep 0.1; done
    cmp -s "one-$cpus/weights.safetensors" "$jobs/weights.safetensors" && same=identical || same=DIFFERENT
    merge_id=$("$bin" slurm status --jobs "$jobs.slurm" --json | grep -o '"merge_job": "[0-9]*"' | grep -o '[0-9]*')
    merge=$(grep -o 'wall_s=[0-9.]*' "time-$merge_id.txt" | cut -d= -f2)
    merge_rss=$(grep -o 'peak_rss_kb=[0-9]*' "time-$merge_id.txt" | cut -d= -f2)
    rm "time-$merge_id.txt"
    tasks=$(cat time-*.txt | grep -o 'wall_s=[0-9.]*' | cut -d= -f2 | sort -n | tr '\n' ' ')
    rss=$(cat time-*.txt | grep -o 'peak_rss_kb=[0-9]*' | cut -d= -f2 | sort -n | tail -1)
    echo "$n shards × $cpus CPUs: submit → merged $(echo "$end - $start" | bc) s; weights $same; task walls (s): $tasks; largest task peak RSS $((rss / 1024)) MiB; merge $merge s, $((merge_rss / 1024)) MiB"
  done
done
