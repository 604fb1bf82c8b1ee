#!/usr/bin/env bash
# Stream benchmark: sustained frame rate and latency (window end → frame ready) of
# `brainrecon stream` at a hop of 1/30 s, on CPU, from the synthetic source replayed with --fast
# (every window makes a frame, so the rate is what the machine sustains, not the source's).
#   bash tools/bench/stream.sh [FRAMES]
# Env: BENCH_BATCH (1: --batch), BENCH_PROFILE (release; dev reuses a test build), BENCH_MODEL (shapes-ldm when its weights are in models/, else the tiny test model),
#      BENCH_STEPS (5), BENCH_DENOISERS (the CLI's default: 2 on CPU), BENCH_THREADS (2: RAYON_NUM_THREADS),
#      BENCH_LIVE (0; 1 paces the source in real time instead of --fast: at most 30 frames a
#      second, and windows that arrive while every denoiser is busy are dropped), BENCH_OUT
#      (target/bench-data/stream.jsonl), CARGO_TARGET_DIR (target).
# The page is not served (--no-serve), so the run does not depend on port 8080 being free.
set -euo pipefail
cd "$(dirname "$0")/../.."
frames=${1:-120}
steps=${BENCH_STEPS:-5}
threads=${BENCH_THREADS:-2}
batch=${BENCH_BATCH:-1}
denoisers=${BENCH_DENOISERS:-2}
pace=--fast
if [ "${BENCH_LIVE:-0}" = 1 ]; then pace=; fi
profile=${BENCH_PROFILE:-release}
if [ -z "${BENCH_MODEL:-}" ]; then
  if [ -s models/shapes-ldm/unet/diffusion_pytorch_model.safetensors ]; then
    BENCH_MODEL=shapes-ldm
  else
    BENCH_MODEL=crates/diffusion/tests/fixtures/tiny-sd
    echo "shapes-ldm has no weights yet: benchmarking the tiny test model" >&2
  fi
fi
target=${CARGO_TARGET_DIR:-target}
out=${BENCH_OUT:-$target/bench-data/stream.jsonl}
mkdir -p "$(dirname "$out")"
if [ "$profile" = release ]; then
  cargo build --release -p brainrecon-cli
  bin="$target/release/brainrecon"
else
  cargo build -p brainrecon-cli
  bin="$target/debug/brainrecon"
fi
set -x
RAYON_NUM_THREADS=$threads "$bin" stream --source synthetic $pace --frames "$frames" --json \
  --no-serve --model "$BENCH_MODEL" --steps "$steps" --batch "$batch" --denoisers "$denoisers" > "$out.last"
set +x
python3 - "$out.last" "$out" <<'PY' 2>/dev/null || cat "$out.last"
import json, sys
s = json.load(open(sys.argv[1]))
with open(sys.argv[2], "a") as f:
    f.write(json.dumps(s) + "\n")
print(f"{s['model']}: {'--fast' if s['fast'] else 'live'}, {s['image_size']} px, {s['steps']} {s['scheduler']} steps, batch {s['batch']}, {s.get('denoisers', 1)} denoiser(s), hop {s['hop_s']:.4f} s, "
      f"{s['frames']} frames: {s['fps']:.2f} fps sustained ({s['fps_overall']:.2f} overall), "
      f"latency mean {s['latency_ms_mean']:.0f} ms, p95 {s['latency_ms_p95']:.0f} ms, {s['dropped']} of {s['windows']} windows dropped")
PY
echo "results: $out"
