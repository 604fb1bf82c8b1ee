#!/usr/bin/env bash
# B2C training-step benchmark: `brainrecon b2c train` (encoder of the paper's depth + the
# shapes-ldm U-Net, all tuned, CLIP loss on) next to the same step in PyTorch
# (tools/bench/b2c_step.py), one after the other in the same run, both on BENCH_THREADS threads.
#   bash tools/bench/b2c.sh [STEPS]          # default 30 timed steps, batch 8
# Env: BENCH_PYTHON (default .venv-torch/bin/python with tools/fixtures/requirements-diffusion.txt),
#      BENCH_THREADS (2), BENCH_DIR (target/bench-data/b2c),
#      BENCH_ENGINE (tape: the project's own; candle: candle's autograd, the before).
set -euo pipefail
cd "$(dirname "$0")/../.."
steps=${1:-30}
threads=${BENCH_THREADS:-2}
engine=${BENCH_ENGINE:-tape}
dir=${BENCH_DIR:-target/bench-data/b2c}
python=${BENCH_PYTHON:-.venv-torch/bin/python}
if [ ! -x "$python" ]; then
  python3 -m venv .venv-torch
  .venv-torch/bin/pip install -r tools/fixtures/requirements-diffusion.txt
  python=.venv-torch/bin/python
fi
cargo build --release --locked -p brainrecon-cli
bin="${CARGO_TARGET_DIR:-target}"/release/brainrecon
[ -e "$dir/subj01/subject.json" ] || {
  $bin simulate --out "$dir/nsd" --images 300 --seed 0 --image-size 64 > /dev/null
  $bin nsd prepare --nsd-root "$dir/nsd" --subject subj01 --out "$dir/subj01" > /dev/null
}
rm -rf "$dir/run"
# Two steps first (features computed, caches warm), then the timed run resumes from there.
RAYON_NUM_THREADS=$threads $bin b2c train --subject "$dir/subj01" --out "$dir/run" --steps 3 --checkpoint-every 3 --batch 8 --engine "$engine" > /dev/null
rm -rf "$dir/run"
# The peak resident memory of the whole run (KB), beside PyTorch's.
/usr/bin/time -o "$dir/brainrecon.rss" -f %M env RAYON_NUM_THREADS=$threads \
  $bin b2c train --subject "$dir/subj01" --out "$dir/run" --steps "$steps" --checkpoint-every 1000 --batch 8 --engine "$engine" --json > "$dir/brainrecon.json"
"$python" tools/bench/b2c_step.py --config "$dir/run/encoder/config.json" --unet models/shapes-ldm/unet \
  --batch 8 --steps "$steps" --threads "$threads" > "$dir/python.json"
"$python" - "$dir" "$engine" <<'PY'
import json, sys
d, engine = sys.argv[1], sys.argv[2]
ours = json.load(open(f"{d}/brainrecon.json"))
py = json.loads(open(f"{d}/python.json").read().strip().splitlines()[-1])
rss = int(open(f"{d}/brainrecon.rss").read().split()[-1]) * 1024 / 1e6
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"B2C training step, batch {py['batch']}, {py['voxels']} voxels -> {py['tokens']} x {py['width']}, {py['threads']} threads, {cpu}")
print(f"brainrecon ({engine}): {ours['seconds_per_step'] * 1000:.0f} ms/step; PyTorch {py['torch']}: {py['seconds_per_step'] * 1000:.0f} ms/step; "
      f"speed ratio {py['seconds_per_step'] / ours['seconds_per_step']:.2f}x; peak memory {rss:.0f} MB against {py['peak_mb']:.0f} MB")
PY
