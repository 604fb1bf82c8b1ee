#!/usr/bin/env bash
# Banded ridge benchmark: brainrecon, then himalaya, on the same .npy data and the same search.
#   bash tools/bench/banded.sh
# Env: BENCH_VOXELS (20000), BENCH_N_ITER (4 candidates), BENCH_THREADS (2),
#      BENCH_DATA_DIR (target/bench-banded), BENCH_PYTHON (default .venv-bench/bin/python).
# The issue's workload (3×300 features, 3,000 + 600 TRs, 20,000 voxels) takes tens of minutes for
# himalaya on 2 cores; BENCH_VOXELS=2000 gives a quick look.
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=${BENCH_THREADS:-2}
data=${BENCH_DATA_DIR:-target/bench-banded}
mkdir -p "$data"

cargo build --release --locked -p brainrecon-cli
python=${BENCH_PYTHON:-.venv-bench/bin/python}
if [ ! -x "$python" ]; then
  python3 -m venv .venv-bench
  .venv-bench/bin/pip install -r tools/bench/requirements.txt
  python=.venv-bench/bin/python
fi

"${CARGO_TARGET_DIR:-target}"/release/brainrecon bench banded --voxels "${BENCH_VOXELS:-20000}" --n-iter "${BENCH_N_ITER:-4}" \
  --threads "$threads" --data-dir "$data" --json > "$data/brainrecon.json"
"$python" tools/bench/banded_anchor.py --data-dir "$data" --threads "$threads" --out "$data/himalaya.json" > /dev/null
"$python" tools/bench/banded_anchor.py --table "$data/brainrecon.json" "$data/himalaya.json"
