#!/usr/bin/env bash
# Metric-suite benchmark: `brainrecon eval` (the eight metrics, MindEye protocol) next to MindEye2's
# evaluation in Python (tools/bench/metrics_anchor.py) on the same PNGs and network weights, one
# after the other in the same run, both on BENCH_THREADS threads.
#   bash tools/bench/metrics.sh [IMAGES]        # default 32 stimulus/reconstruction pairs
# Env: BENCH_PYTHON (default .venv-vision/bin/python, with tools/fixtures/requirements-vision.txt
#      and transformers==5.23.0), BENCH_THREADS (2), BENCH_DIR (target/bench-data/metrics).
set -euo pipefail
cd "$(dirname "$0")/../.."
images=${1:-32}
threads=${BENCH_THREADS:-2}
dir=${BENCH_DIR:-target/bench-data/metrics}
python=${BENCH_PYTHON:-.venv-vision/bin/python}
if [ ! -x "$python" ]; then
  python3 -m venv .venv-vision
  .venv-vision/bin/pip install -r tools/fixtures/requirements-vision.txt transformers==5.23.0
  python=.venv-vision/bin/python
fi
cargo build --release --locked -p brainrecon-cli
[ -e "$dir/clip/config.json" ] && [ "$(ls "$dir/stimuli" | wc -l)" = "$images" ] \
  || OMP_NUM_THREADS=$threads "$python" tools/bench/metrics_anchor.py setup "$dir" --images "$images"
start=$(date +%s.%N)
RAYON_NUM_THREADS=$threads "${CARGO_TARGET_DIR:-target}"/release/brainrecon eval --stimuli "$dir/stimuli" --recons "$dir/recons" \
  --metric-weights "$dir/weights" --clip "$dir/clip" --json > "$dir/brainrecon.json"
end=$(date +%s.%N)
OMP_NUM_THREADS=$threads "$python" tools/bench/metrics_anchor.py run "$dir" --threads "$threads" > "$dir/python.json"
"$python" - "$dir" "$start" "$end" <<'PY'
import json, sys
d, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
ours = json.load(open(f"{d}/brainrecon.json"))["suite"]
py = json.loads(open(f"{d}/python.json").read().strip().splitlines()[-1])
seconds = end - start
names = ["PixCorr", "SSIM", "AlexNet(2)", "AlexNet(5)", "InceptionV3", "CLIP", "EffNet-B", "SwAV"]
print(f"{py['images']} image pairs, {py['torch']} / torchvision {py['torchvision']}")
print(f"brainrecon eval: {seconds:.1f} s (whole process); Python: {py['seconds']:.1f} s; ratio {py['seconds'] / seconds:.2f}x")
print("| metric | brainrecon | Python |")
for name, value in zip(names, ours["rows"][0]["values"]):
    print(f"| {name} | {value:.6f} | {py['values'][name]:.6f} |")
PY
