#!/usr/bin/env bash
# The main job on the embedded default: a synthetic subject written in NSD's own layout,
# prepared as NSD is, decoded to pixels with ridge regression from nsdgeneral, and scored.
# Usage: bash tools/demo.sh [OUT_DIR]   (default: demo-out)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-demo-out}"

if ! command -v cargo >/dev/null; then
  echo "error: cargo is required (install Rust from your distribution or rustup)" >&2
  exit 2
fi
cargo build --release --locked -p brainrecon-cli
brainrecon=target/release/brainrecon

rm -rf "$out" "$out.partial"
mkdir -p "$out"
"$brainrecon" simulate --out "$out/nsd" --images 300 --seed 1
"$brainrecon" nsd prepare --nsd-root "$out/nsd" --subject subj01 --out "$out/subj01"
"$brainrecon" info "$out/subj01"
"$brainrecon" fit --subject "$out/subj01" --roi nsdgeneral --target pixels:32 --out "$out/models/pixels"
"$brainrecon" decode --subject "$out/subj01" --model "$out/models/pixels" --out "$out/recons/pixels"
"$brainrecon" eval --stimuli "$out/subj01" --recons "$out/recons/pixels" --sheet "$out/sheet.png"
"$brainrecon" eval --stimuli "$out/subj01" --recons "$out/recons/pixels" --json > "$out/metrics.json"
echo "reconstructions: $out/recons/pixels   contact sheet: $out/sheet.png   metrics: $out/metrics.json"
