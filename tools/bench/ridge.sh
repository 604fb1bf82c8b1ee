#!/usr/bin/env bash
# Ridge benchmark, brainrecon side by side with scikit-learn and himalaya on the same .npy data.
#   bash tools/bench/ridge.sh [A|B|C|A16k|all]   (all = A, B, C; A16k is 1.3 GB of arrays)
# Env: BENCH_THREADS (2), BENCH_DATA_DIR (target/bench-data), BENCH_PRECISION (both), BENCH_CV (both),
#      BENCH_TIMEOUT (per Python anchor, seconds; 900), BENCH_PYTHON (default .venv-bench/bin/python).
# Runs one job at a time: workload A alone holds ~0.6 GB of X and several GB while fitting.
set -euo pipefail
cd "$(dirname "$0")/../.."
workload=${1:-all}
case "$workload" in
  A|B|C|A16k) workloads=$workload ;;
  all) workloads=A,B,C ;;
  *) echo "error: expected A, B, C, A16k or all, found '$workload'" >&2; exit 2 ;;
esac
threads=${BENCH_THREADS:-2}
data=${BENCH_DATA_DIR:-target/bench-data}
mkdir -p "$data"

cargo build --release --locked -p brainrecon-cli
python=${BENCH_PYTHON:-.venv-bench/bin/python}
if [ ! -x "$python" ]; then
  python3 -m venv .venv-bench
  .venv-bench/bin/pip install -r tools/bench/requirements.txt
  python=.venv-bench/bin/python
fi

"${CARGO_TARGET_DIR:-target}"/release/brainrecon bench ridge --workload "$workload" --threads "$threads" \
  --precision "${BENCH_PRECISION:-both}" --cv "${BENCH_CV:-both}" --data-dir "$data" --json > "$data/brainrecon.json"
"$python" tools/bench/ridge_anchors.py --data-dir "$data" --workloads "$workloads" \
  --threads "$threads" --timeout "${BENCH_TIMEOUT:-900}" --out "$data/anchors.json"
"$python" tools/bench/ridge_anchors.py --table "$data/brainrecon.json" "$data/anchors.json"
