#!/usr/bin/env bash
# One convolution's forward and backward pass (3x3, stride 1, padding 1, bias; B=8, 64 -> 64
# channels, 32x32 by default) on the training tape, on candle's autograd and in PyTorch, at 1 and
# 2 threads, ROUNDS rounds interleaved (the engines one after the other in each round). Prints the
# JSON lines and the CPU model. Not run in CI.
#   bash tools/bench/tape_conv.sh [ROUNDS] [B C O HW]
# Env: BENCH_PYTHON (default .venv-torch/bin/python), BENCH_STEPS (20 timed after 3 warm-up).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
shape=("${@:2}")
[ ${#shape[@]} -eq 4 ] || shape=(8 64 64 32)
steps=${BENCH_STEPS:-20}
python=${BENCH_PYTHON:-.venv-torch/bin/python}
cargo build --locked -p brainrecon-nn --example tape_conv_bench
bin="${CARGO_TARGET_DIR:-target}"/debug/examples/tape_conv_bench
grep -m1 "model name" /proc/cpuinfo
for round in $(seq "$rounds"); do
  for threads in 1 2; do
    RAYON_NUM_THREADS=$threads "$bin" "${shape[@]}" "$steps"
    OMP_NUM_THREADS=$threads "$python" tools/bench/tape_conv_anchor.py --threads "$threads" \
      --shape "${shape[@]}" --steps "$steps"
  done
done
