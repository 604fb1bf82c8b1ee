#!/usr/bin/env bash
# GLMsingle (TYPEA + TYPEB with its HRF library) against brainrecon-glm on the same seeded
# experiment, one after the other on this machine:
#   bash tools/bench/glmsingle.sh [VOXELS]        (default 20000; 4 runs × 188 volumes, 240 trials)
# Env: GLMSINGLE (a checkout of cvnlab/GLMsingle at 1ab54a6; default ./GLMsingle),
#      BENCH_PYTHON (a Python with tools/fixtures/requirements-glmsingle.txt; default
#      venvs/glmsingle/bin/python), BENCH_DATA_DIR (default target/bench-glmsingle),
#      BENCH_THREADS (2; for numpy's BLAS and faer alike).
set -euo pipefail
cd "$(dirname "$0")/../.."
voxels=${1:-20000}
threads=${BENCH_THREADS:-2}
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads MKL_NUM_THREADS=$threads RAYON_NUM_THREADS=$threads
glmsingle=${GLMSINGLE:-GLMsingle}
python=${BENCH_PYTHON:-venvs/glmsingle/bin/python}
data=${BENCH_DATA_DIR:-target/bench-glmsingle}/$voxels
if [ ! -d "$glmsingle/glmsingle" ]; then
  echo "error: GLMsingle checkout not found at '$glmsingle' (set GLMSINGLE; see tools/fixtures/glmsingle_hrf.py)" >&2
  exit 2
fi
cargo build --release --locked -p brainrecon-glm --example typeb
"$python" tools/bench/glmsingle_anchor.py make "$data" --voxels "$voxels" --glmsingle "$glmsingle"
"${CARGO_TARGET_DIR:-target}"/release/examples/typeb "$data" > "$data/brainrecon_time.json"
"$python" tools/bench/glmsingle_anchor.py fit "$data" --glmsingle "$glmsingle"
"$python" tools/bench/glmsingle_anchor.py compare "$data"
