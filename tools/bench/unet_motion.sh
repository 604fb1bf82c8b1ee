#!/usr/bin/env bash
# Motion U-Net benchmark: brainrecon (candle, CPU) next to diffusers' UNetMotionModel (torch,
# CPU) in the same run. One step of the SD 1.5 U-Net with the v1.5 motion adapter's modules on
# one clip of 16 frames at 256 px (latents 32x32), f32, random weights, each side in its own
# process (peak RSS is that process's own).
#   bash tools/bench/unet_motion.sh
# Env: BENCH_THREADS (2), BENCH_STEPS (1), BENCH_FRAMES (16), BENCH_LATENT (32),
#      BENCH_PYTHON (.venv-torch/bin/python, pins in tools/fixtures/requirements-unet-motion.txt),
#      BENCH_OUT (target/bench-data/unet_motion.jsonl).
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=${BENCH_THREADS:-2}
steps=${BENCH_STEPS:-1}
frames=${BENCH_FRAMES:-16}
latent=${BENCH_LATENT:-32}
python=${BENCH_PYTHON:-.venv-torch/bin/python}
out=${BENCH_OUT:-target/bench-data/unet_motion.jsonl}
mkdir -p "$(dirname "$out")"
: > "$out"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target-diffusion}
cargo build --release -p brainrecon-diffusion --example bench_unet_motion
bin="$CARGO_TARGET_DIR/release/examples/bench_unet_motion"
# BENCH_IMAGE_ONLY=1 also times the image U-Nets alone on the frames (the motion modules' share).
for mode in "" ${BENCH_IMAGE_ONLY:+--image-only}; do
  RAYON_NUM_THREADS=$threads "$bin" --frames "$frames" --latent "$latent" --steps "$steps" --json $mode | tee -a "$out"
  if [ -x "$python" ]; then
    OMP_NUM_THREADS=$threads "$python" tools/bench/unet_motion_diffusers.py --frames "$frames" \
      --latent "$latent" --steps "$steps" --threads "$threads" --json $mode | tee -a "$out"
  else
    echo "skipping diffusers: no $python" >&2
  fi
done
echo "results: $out"
