#!/usr/bin/env bash
# CLAP embedding benchmark: a random-weight CLAP at the size of laion/clap-htsat-unfused (HTSAT
# audio tower, RoBERTa-base text tower, 48 kHz, 10-s windows, rand_trunc), audio embeddings
# (mel front end + audio tower + projection) per 10-s window of synthetic music,
# `brainrecon bench clap` next to transformers' ClapFeatureExtractor + ClapModel on the same
# windows, one after the other in the same run, both on BENCH_THREADS threads; the embeddings
# are compared too.
#   bash tools/bench/clap.sh [WINDOWS]     # default 8 windows
# Env: BENCH_PYTHON (default .venv-audio, the CLAP fixtures' venv, made from
#      tools/fixtures/requirements-clap.txt when missing),
#      BENCH_THREADS (2), BENCH_BATCH (windows per forward pass, 1),
#      BENCH_DIR (target/bench-data/clap).
set -euo pipefail
cd "$(dirname "$0")/../.."
windows=${1:-8}
threads=${BENCH_THREADS:-2}
batch=${BENCH_BATCH:-1}
dir=${BENCH_DIR:-target/bench-data/clap}
python=${BENCH_PYTHON:-.venv-audio/bin/python}
if [ ! -x "$python" ]; then
  python3 -m venv .venv-audio
  .venv-audio/bin/pip install -r tools/fixtures/requirements-clap.txt
  python=.venv-audio/bin/python
fi
cargo build --release --locked -p brainrecon-cli
bin=${CARGO_TARGET_DIR:-target}/release/brainrecon
mkdir -p "$dir"
base="$dir/clap-htsat-unfused"
[ -e "$base/model.safetensors" ] || "$python" tools/bench/clap_anchor.py --make-base "$base"
RAYON_NUM_THREADS=$threads "$bin" bench clap --clap "$base" --windows "$windows" \
  --batch "$batch" --out "$dir" > /dev/null
OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads MKL_NUM_THREADS=$threads \
  "$python" tools/bench/clap_anchor.py --clap "$base" --windows "$dir/windows.npy" \
  --threads "$threads" --batch "$batch" --embeddings-out "$dir/transformers_embeddings.npy" \
  > "$dir/python.json"
"$python" - "$dir" <<'PY'
import json, sys
import numpy as np
d = sys.argv[1]
ours = json.load(open(f"{d}/brainrecon.json"))
py = json.loads(open(f"{d}/python.json").read().strip().splitlines()[-1])
a = np.load(f"{d}/{ours['embeddings_file']}")
b = np.load(f"{d}/transformers_embeddings.npy")
if a.shape != b.shape:
    sys.exit(f"embeddings differ in shape: brainrecon {a.shape}, transformers {b.shape}")
diff = float(np.abs(a.astype(np.float64) - b).max())
print(f"CLAP-HTSAT-unfused audio embedding, {ours['windows']} windows of {ours['samples_per_window']} samples "
      f"at {ours['sampling_rate']} Hz, batch {ours['batch']}, {py['threads']} threads: "
      f"brainrecon {ours['seconds_per_window']:.3f} s/window (front end {ours['front_end_seconds']:.3f}, "
      f"tower {ours['model_seconds']:.3f}); transformers {py['transformers']} (torch {py['torch']}) "
      f"{py['seconds_per_window']:.3f} s/window (front end {py['front_end_seconds']:.3f}, "
      f"tower {py['model_seconds']:.3f}); speed ratio {py['seconds_per_window'] / ours['seconds_per_window']:.2f}x; "
      f"embedding max abs diff {diff:.2e}")
PY
