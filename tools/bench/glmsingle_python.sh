#!/usr/bin/env bash
# GLMsingle's GLM_single against brainrecon's Python GLM_single (the `brainrecon` wheel) on
# crates/python/benchmarks/bench_glmsingle.py's experiments, measured as tools/bench/glmsingle.sh
# measures the CLI's: each fit in its own process under /usr/bin/time, numpy's BLAS and
# brainrecon's threads pinned to the same count, the two sides back to back:
#   bash tools/bench/glmsingle_python.sh [SIZES]
#     SIZES default "small moderate" (bench_glmsingle.py's: 4 × 120 volumes, 2,000 voxels;
#     5 × 150 volumes, 6,000 voxels)
# Env: GLMSINGLE (a checkout of cvnlab/GLMsingle at 1ab54a6; default ./GLMsingle),
#      BENCH_PYTHON (a Python with tools/fixtures/requirements-glmsingle.txt and the brainrecon
#      wheel installed; default venvs/glmsingle/bin/python), BENCH_DATA_DIR (default
#      target/bench-glmsingle-python), BENCH_THREADS (default "1 2"), BENCH_REPEATS (default 3).
# Order: repeat, then thread setting, then size, then GLMsingle and brainrecon back to back, so
# the repeats of one setting are spread over the whole run (other work on the machine shows as a
# range, and the 1-minute load average before each pair is recorded).
# What differs: GLMsingle's fit always fits its run-wise FIR diagnostic, which brainrecon does
# not compute; it is timed inside GLMsingle's fit and reported apart (glmsingle_python.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
sizes=${1:-small moderate}
settings=${BENCH_THREADS:-1 2}
repeats=${BENCH_REPEATS:-3}
glmsingle=${GLMSINGLE:-GLMsingle}
python=${BENCH_PYTHON:-venvs/glmsingle/bin/python}
root=${BENCH_DATA_DIR:-target/bench-glmsingle-python}
if [ ! -d "$glmsingle/glmsingle" ]; then
  echo "error: GLMsingle checkout not found at '$glmsingle' (set GLMSINGLE; see tools/fixtures/glmsingle_hrf.py)" >&2
  exit 2
fi
if ! "$python" -c 'import brainrecon.glm, fracridge' 2>/dev/null; then
  echo "error: $python cannot import brainrecon.glm and fracridge (set BENCH_PYTHON to a Python with tools/fixtures/requirements-glmsingle.txt and the brainrecon wheel: bash tools/wheel.sh)" >&2
  exit 2
fi
case $repeats in ''|*[!0-9]*|0) echo "error: BENCH_REPEATS must be a positive whole number, not '$repeats'" >&2; exit 2 ;; esac
dirs=()
for size in $sizes; do
  "$python" tools/bench/glmsingle_python.py make "$root/$size" --size "$size" --glmsingle "$glmsingle"
  rm -f "$root/$size"/*.fit.json "$root/$size"/*.time
  dirs+=("$root/$size")
done
timed() { # DIR NAME THREADS SIDE: one fit in its own process, threads pinned
  local dir=$1 name=$2 threads=$3 side=$4 load
  load=$(cut -d' ' -f1 /proc/loadavg)
  OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads MKL_NUM_THREADS=$threads RAYON_NUM_THREADS=$threads \
    /usr/bin/time -f "{\"wall_s\": %e, \"user_s\": %U, \"system_s\": %S, \"peak_kb\": %M, \"load\": $load}" \
    -o "$dir/${side}_$name.time" \
    "$python" tools/bench/glmsingle_python.py fit "$dir" --side "$side" --name "${side}_$name" --glmsingle "$glmsingle"
}
for repeat in $(seq "$repeats"); do
  for threads in $settings; do
    for dir in "${dirs[@]}"; do
      echo "repeat $repeat, threads $threads, $(basename "$dir"): GLMsingle, then brainrecon (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
      timed "$dir" "t${threads}_r$repeat" "$threads" glmsingle
      timed "$dir" "t${threads}_r$repeat" "$threads" brainrecon
    done
  done
done
echo "CPU: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC')"
"$python" tools/bench/glmsingle_python.py compare "${dirs[@]}"
