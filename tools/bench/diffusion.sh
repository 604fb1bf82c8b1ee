#!/usr/bin/env bash
# Diffusion benchmark: brainrecon (candle, CPU) next to diffusers (torch, CPU) in the same run.
# One SD 1.5 U-Net step at 512 px (batch 2) and one VAE decode at 512 px, f32 and f16, random
# weights, each configuration in its own process (peak RSS is that process's own).
#   bash tools/bench/diffusion.sh [unet|vae|all] [f32|f16|all]
# Env: BENCH_THREADS (2), BENCH_STEPS (1), BENCH_PYTHON (.venv-torch/bin/python, pins in
#      tools/fixtures/requirements-diffusion.txt), BENCH_OUT (target/bench-data/diffusion.jsonl).
# Runs one job at a time: the f32 U-Net alone holds ~3.4 GB of weights plus attention buffers.
set -euo pipefail
cd "$(dirname "$0")/../.."
models=${1:-all}; dtypes=${2:-all}
[ "$models" = all ] && models="unet vae"
[ "$dtypes" = all ] && dtypes="f32 f16"
threads=${BENCH_THREADS:-2}
steps=${BENCH_STEPS:-1}
python=${BENCH_PYTHON:-.venv-torch/bin/python}
out=${BENCH_OUT:-target/bench-data/diffusion.jsonl}
mkdir -p "$(dirname "$out")"
: > "$out"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target-diffusion}
cargo build --release -p brainrecon-diffusion --example bench_unet_vae
bin="$CARGO_TARGET_DIR/release/examples/bench_unet_vae"
for m in $models; do
  for d in $dtypes; do
    RAYON_NUM_THREADS=$threads "$bin" --model "$m" --dtype "$d" --steps "$steps" --json | tee -a "$out"
    if [ -x "$python" ]; then
      OMP_NUM_THREADS=$threads "$python" tools/fixtures/bench_diffusers.py --model "$m" --dtype "$d" \
        --steps "$steps" --threads "$threads" --json | tee -a "$out"
    else
      echo "skipping diffusers: no $python" >&2
    fi
  done
done
echo "results: $out"
