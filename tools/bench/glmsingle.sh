#!/usr/bin/env bash
# GLMsingle against brainrecon-glm on the same seeded experiment, back to back at each thread
# setting, each process under /usr/bin/time (wall, CPU and peak memory):
#   bash tools/bench/glmsingle.sh [VOXELS] [MODELS] [MAKE OPTIONS]
#     VOXELS default 20000; MODELS all (TYPEA-D, GLMsingle's defaults; default) or ab (TYPEA +
#     TYPEB); MAKE OPTIONS go to glmsingle_anchor.py make (default 4 runs × 188 volumes, a trial
#     every 3 TRs; NSD's session: --runs 12 --every 2.8 --conditions 378)
# Env: GLMSINGLE (a checkout of cvnlab/GLMsingle at 1ab54a6; default ./GLMsingle),
#      BENCH_PYTHON (a Python with tools/fixtures/requirements-glmsingle.txt; default
#      venvs/glmsingle/bin/python), BENCH_DATA_DIR (default target/bench-glmsingle),
#      BENCH_THREADS (thread settings, each for numpy's BLAS and faer alike; default "1 2"),
#      BENCH_SIDES (both; brainrecon to time only brainrecon-glm; glmsingle to time only GLMsingle,
#      compared with brainrecon-glm's costs and outputs from an earlier run in the same folder;
#      default both).
# GLMsingle is given no figuredir, so it draws no figures inside the timed fit.
set -euo pipefail
cd "$(dirname "$0")/../.."
voxels=${1:-20000}
models=${2:-all}
shift $(( $# > 2 ? 2 : $# ))
settings=${BENCH_THREADS:-1 2}
sides=${BENCH_SIDES:-both}
glmsingle=${GLMSINGLE:-GLMsingle}
python=${BENCH_PYTHON:-venvs/glmsingle/bin/python}
data=${BENCH_DATA_DIR:-target/bench-glmsingle}/$voxels-$models${1:+-$(echo "$*" | tr -d ' -')}
if [ ! -d "$glmsingle/glmsingle" ]; then
  echo "error: GLMsingle checkout not found at '$glmsingle' (set GLMSINGLE; see tools/fixtures/glmsingle_hrf.py)" >&2
  exit 2
fi
case $sides in both|brainrecon|glmsingle) ;; *) echo "error: BENCH_SIDES must be both, brainrecon or glmsingle, not '$sides'" >&2; exit 2 ;; esac
[ "$sides" = glmsingle ] || cargo build --release --locked -p brainrecon-glm --example glmsingle
"$python" tools/bench/glmsingle_anchor.py make "$data" --voxels "$voxels" --glmsingle "$glmsingle" "$@"
timed() { # NAME THREADS COMMAND...: COMMAND's stdout to DATA/NAME_tTHREADS.out, its costs to .time
  local name=$1 threads=$2; shift 2
  OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads MKL_NUM_THREADS=$threads RAYON_NUM_THREADS=$threads \
    /usr/bin/time -f '{"wall_s": %e, "user_s": %U, "system_s": %S, "peak_kb": %M}' \
    -o "$data/${name}_t$threads.time" "$@" > "$data/${name}_t$threads.out"
}
for threads in $settings; do
  if [ "$sides" != glmsingle ]; then
    echo "threads $threads: brainrecon-glm" >&2
    timed brainrecon "$threads" "${CARGO_TARGET_DIR:-target}"/release/examples/glmsingle "$data" "$models"
    mv "$data/brainrecon_t$threads.out" "$data/brainrecon_t$threads.fit.json"
  elif [ ! -f "$data/brainrecon_t$threads.time" ]; then
    echo "error: BENCH_SIDES=glmsingle compares with brainrecon-glm's run at $threads thread(s), but $data/brainrecon_t$threads.time is missing: run BENCH_SIDES=brainrecon first" >&2
    exit 2
  fi
  if [ "$sides" != brainrecon ]; then
    echo "threads $threads: GLMsingle" >&2
    timed glmsingle "$threads" "$python" tools/bench/glmsingle_anchor.py fit "$data" --glmsingle "$glmsingle" --models "$models"
    mv "$data/glmsingle_time.json" "$data/glmsingle_t$threads.fit.json"
  fi
done
"$python" tools/bench/glmsingle_anchor.py compare "$data" --models "$models" --threads "$settings" --sides "${sides/glmsingle/both}"
