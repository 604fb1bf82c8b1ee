#!/usr/bin/env bash
# Caption generation benchmark: BLIP-base (random weights, transformers' default BlipConfig)
# beam search per image, `brainrecon bench caption` next to transformers on the same encoder
# states, one after the other in the same run, both on BENCH_THREADS threads; the generated ids
# are compared too.
#   bash tools/bench/caption.sh [IMAGES]     # default 8 images of 226 tokens (the published 240 px)
# Env: BENCH_PYTHON (default venvs/blip5-style venv made from
#      tools/fixtures/requirements-blip.txt at .venv-blip), BENCH_THREADS (2),
#      BENCH_DIR (target/bench-data/caption).
set -euo pipefail
cd "$(dirname "$0")/../.."
images=${1:-8}
threads=${BENCH_THREADS:-2}
dir=${BENCH_DIR:-target/bench-data/caption}
python=${BENCH_PYTHON:-.venv-blip/bin/python}
if [ ! -x "$python" ]; then
  python3 -m venv .venv-blip
  .venv-blip/bin/pip install -r tools/fixtures/requirements-blip.txt
  python=.venv-blip/bin/python
fi
cargo build --release --locked -p brainrecon-cli
mkdir -p "$dir"
[ -e "$dir/blip-base/model.safetensors" ] || "$python" tools/bench/caption_anchor.py --make-base "$dir/blip-base"
RAYON_NUM_THREADS=$threads "${CARGO_TARGET_DIR:-target}"/release/brainrecon bench caption --blip "$dir/blip-base" \
  --images "$images" --out "$dir" > /dev/null
"$python" tools/bench/caption_anchor.py --blip "$dir/blip-base" --states "$dir/states.npy" \
  --threads "$threads" > "$dir/python.json"
"$python" - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
ours = json.load(open(f"{d}/brainrecon.json"))
py = json.loads(open(f"{d}/python.json").read().strip().splitlines()[-1])
same = sum(a == b for a, b in zip(ours["ids"], py["ids"]))
print(f"BLIP-base captioning, beam 3, {ours['tokens']} x {ours['width']} image tokens, {py['threads']} threads, {ours['images']} images")
print(f"brainrecon: {ours['seconds_per_image']:.3f} s/image; transformers {py['transformers']} (torch {py['torch']}): "
      f"{py['seconds_per_image']:.3f} s/image; speed ratio {py['seconds_per_image'] / ours['seconds_per_image']:.2f}x; "
      f"identical captions {same}/{len(py['ids'])}")
PY
