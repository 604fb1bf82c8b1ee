#!/usr/bin/env bash
# The main job on the embedded default: a synthetic subject written in NSD's own layout,
# prepared as NSD is, decoded with ridge regression to the latents and text embeddings of the
# built-in model shapes-ldm, reconstructed with the linear route (Takagi & Nishimoto 2023),
# scored, and reported in HTML. Offline; about 5 minutes on 2 CPU cores after the build.
# Usage: bash tools/demo.sh [OUT_DIR]   (default: demo-out; an interrupted demo is resumed)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-demo-out}"

if ! command -v cargo >/dev/null; then
  echo "error: cargo is required (install Rust from your distribution or rustup)" >&2
  exit 2
fi
cargo build --release --locked -p brainrecon-cli
"${CARGO_TARGET_DIR:-target}"/release/brainrecon demo --out "$out"
