#!/usr/bin/env bash
# Training-step benchmark: `brainrecon bench train-step` for the shapes-ldm U-Net, the video
# route's window encoder and NICE's EEG encoder, each next to the same step in PyTorch (tools/bench/train_step_anchor.py,
# which reads brainrecon's JSON line and runs the same workload, batch and steps), one after the
# other, all on BENCH_THREADS threads. NICE's encoder runs twice in PyTorch: as NICE's code defines
# it, and with its average pool folded into the temporal convolution as brainrecon computes it (the
# same function), which splits the ratio into the folding and the rest. Prints a markdown table;
# JSON lines stay in BENCH_DIR.
#   bash tools/bench/train_step.sh [STEPS]     # default 20 timed steps after 3 warm-up steps
#   BENCH_MODELS=eeg-encoder bash tools/bench/train_step.sh 259   # one THINGS-EEG2 epoch of batches
# Env: BENCH_PYTHON (default .venv-torch/bin/python with tools/fixtures/requirements-diffusion.txt),
#      BENCH_THREADS (2), BENCH_DIR (target/bench-data/train-step),
#      BENCH_MODELS (space-separated, default "unet window-encoder eeg-encoder").
set -euo pipefail
cd "$(dirname "$0")/../.."
steps=${1:-20}
threads=${BENCH_THREADS:-2}
dir=${BENCH_DIR:-target/bench-data/train-step}
models=${BENCH_MODELS:-unet window-encoder eeg-encoder}
python=${BENCH_PYTHON:-.venv-torch/bin/python}
if [ ! -x "$python" ]; then
  python3 -m venv .venv-torch
  .venv-torch/bin/pip install -r tools/fixtures/requirements-diffusion.txt
  python=.venv-torch/bin/python
fi
cargo build --release --locked -p brainrecon-cli
bin="${CARGO_TARGET_DIR:-target}"/release/brainrecon
mkdir -p "$dir"
for model in $models; do
  RAYON_NUM_THREADS=$threads $bin bench train-step --model "$model" --steps "$steps" --warmup 3 \
    --pipeline models/shapes-ldm --json > "$dir/$model.brainrecon.json"
  "$python" tools/bench/train_step_anchor.py --like "$dir/$model.brainrecon.json" \
    --threads "$threads" > "$dir/$model.pytorch.json"
done
case " $models " in *" eeg-encoder "*)
  "$python" tools/bench/train_step_anchor.py --like "$dir/eeg-encoder.brainrecon.json" \
    --threads "$threads" --fold-pool > "$dir/eeg-encoder.pytorch-folded.json" ;;
esac
"$python" - "$dir" "$models" <<'PY'
import json, sys
d, models = sys.argv[1], sys.argv[2].split()
last = lambda path: json.loads(open(path).read().strip().splitlines()[-1])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
rows = []
runs = [(m, a) for m, a in [("unet", "pytorch"), ("window-encoder", "pytorch"), ("eeg-encoder", "pytorch"),
                             ("eeg-encoder", "pytorch-folded")] if m in models]
for model, anchor in runs:
    ours, py = last(f"{d}/{model}.brainrecon.json"), last(f"{d}/{model}.{anchor}.json")
    what = {"unet": "shapes-ldm U-Net", "window-encoder": "video window encoder",
            "eeg-encoder": "NICE EEG encoder (63 × 250)"}[model]
    if anchor == "pytorch-folded":
        what += ", PyTorch with the pool folded"
    ms = lambda r: f"{r['seconds_min'] * 1000:.1f} / {r['seconds_median'] * 1000:.1f}"
    rows.append(f"| {what}, batch {ours['batch']}, {ours['parameters']:,} params | {ms(ours)} | {ms(py)} "
                f"| {py['seconds_median'] / ours['seconds_median']:.2f}x "
                f"| {sum(ours['seconds']):.1f} / {sum(py['seconds']):.1f} "
                f"| {ours['peak_rss_mb']:.0f} / {py['peak_rss_mb']:.0f} |")
print(f"Training step (forward, loss, backward, clip, AdamW; NICE: Adam, no clip), {ours['steps']} timed steps after {ours['warmup']} warm-up, "
      f"{ours['threads']} threads, {cpu}; PyTorch {py['torch']}")
print()
print("| workload | brainrecon ms min / median | PyTorch ms min / median | ratio (PyTorch / brainrecon) | timed steps, s brainrecon / PyTorch | peak MB brainrecon / PyTorch |")
print("|---|---|---|---|---|---|")
print("\n".join(rows))
PY
