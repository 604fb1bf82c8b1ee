#!/usr/bin/env bash
# Builds brainrecon for NVIDIA GPUs, on any Linux x86-64 machine (a GPU is not needed to build):
#   bash tools/build-cuda.sh
# makes target/release/brainrecon (links no CUDA: starts everywhere) and, beside it,
# target/release/brainrecon-cuda (the GPU build). Run `brainrecon ... --device cuda`: it hands
# the command to brainrecon-cuda where the NVIDIA driver and the CUDA 13 libraries load, and runs
# it on the CPU, saying why, where they do not (src/launch.rs of the CLI).
# About 15 minutes on 2 cores, 10 of them nvcc compiling candle's kernels (once; later builds
# reuse them). Needs python3 with pip (CUDA 13.0 comes from NVIDIA's PyPI wheels) and gcc.
# Env: CUDA_PREFIX (default ~/.local/brainrecon-cuda13), CUDA_COMPUTE_CAP (default 90: H100/H200;
# 80 for A100, 89 for L4/L40/RTX 40xx, 86 for RTX 30xx).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "error: cargo is required (install Rust from your distribution or rustup)" >&2; exit 2; }
prefix=${CUDA_PREFIX:-$HOME/.local/brainrecon-cuda13}
started=$SECONDS
[ -x "$prefix/bin/nvcc" ] && [ -e "$prefix/lib64/libcublas.so" ] || bash tools/cuda-toolkit.sh "$prefix"
# shellcheck source=/dev/null
source "$prefix/env.sh"
cargo build --release --locked -p brainrecon-cli
# one cargo call for every CUDA target: another call would compile candle's kernels again
CARGO_TARGET_DIR=target/cuda cargo build --release --locked -p brainrecon-cli --features cuda
cp target/cuda/release/brainrecon target/release/brainrecon-cuda.tmp
mv target/release/brainrecon-cuda.tmp target/release/brainrecon-cuda
echo "built target/release/brainrecon and target/release/brainrecon-cuda in $(( (SECONDS - started) / 60 )) min"
echo "on a GPU machine: source tools/cuda-env.sh, then target/release/brainrecon ... --device cuda"
