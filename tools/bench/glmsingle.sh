#!/usr/bin/env bash
# GLMsingle against brainrecon-glm on the same seeded experiment, one after the other on this
# machine, each under /usr/bin/time for its peak memory:
#   bash tools/bench/glmsingle.sh [VOXELS] [MODELS] [MAKE OPTIONS]
#     VOXELS default 20000; MODELS all (TYPEA-D, GLMsingle's defaults; default) or ab (TYPEA +
#     TYPEB); MAKE OPTIONS go to glmsingle_anchor.py make (default 4 runs × 188 volumes, a trial
#     every 3 TRs; NSD's session: --runs 12 --every 2.5 --conditions 375)
# Env: GLMSINGLE (a checkout of cvnlab/GLMsingle at 1ab54a6; default ./GLMsingle),
#      BENCH_PYTHON (a Python with tools/fixtures/requirements-glmsingle.txt; default
#      venvs/glmsingle/bin/python), BENCH_DATA_DIR (default target/bench-glmsingle),
#      BENCH_THREADS (2; for numpy's BLAS and faer alike).
set -euo pipefail
cd "$(dirname "$0")/../.."
voxels=${1:-20000}
models=${2:-all}
shift $(( $# > 2 ? 2 : $# ))
threads=${BENCH_THREADS:-2}
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads MKL_NUM_THREADS=$threads RAYON_NUM_THREADS=$threads
glmsingle=${GLMSINGLE:-GLMsingle}
python=${BENCH_PYTHON:-venvs/glmsingle/bin/python}
data=${BENCH_DATA_DIR:-target/bench-glmsingle}/$voxels-$models${1:+-$(echo "$*" | tr -d ' -')}
if [ ! -d "$glmsingle/glmsingle" ]; then
  echo "error: GLMsingle checkout not found at '$glmsingle' (set GLMSINGLE; see tools/fixtures/glmsingle_hrf.py)" >&2
  exit 2
fi
cargo build --release --locked -p brainrecon-glm --example glmsingle
"$python" tools/bench/glmsingle_anchor.py make "$data" --voxels "$voxels" --glmsingle "$glmsingle" "$@"
/usr/bin/time -f '%M' -o "$data/brainrecon_kb" \
  "${CARGO_TARGET_DIR:-target}"/release/examples/glmsingle "$data" "$models" > "$data/brainrecon_time.json"
/usr/bin/time -f '%M' -o "$data/glmsingle_kb" \
  "$python" tools/bench/glmsingle_anchor.py fit "$data" --glmsingle "$glmsingle" --models "$models" > "$data/glmsingle_log.txt"
"$python" tools/bench/glmsingle_anchor.py compare "$data" --models "$models"
echo "peak memory (process): GLMsingle $(awk '{printf "%.2f", $1/1048576}' "$data/glmsingle_kb") GB, brainrecon-glm $(awk '{printf "%.2f", $1/1048576}' "$data/brainrecon_kb") GB"
