#!/usr/bin/env bash
# GPU benchmark: brainrecon next to diffusers and himalaya on the same NVIDIA GPU, in one run.
#   bash tools/bench/gpu.sh [ridge|diffusion|all]
# Needs a `--features cuda` build (see the README's GPU section): BRAINRECON_BIN (default
# <target>/release/brainrecon, <target> being CARGO_TARGET_DIR or target) and BENCH_UNET_VAE
# (default <target>/release/examples/bench_unet_vae,
# from `cargo build --release -p brainrecon-diffusion --features cuda --example bench_unet_vae`),
# and a python (BENCH_PYTHON, default python3) with PyTorch for CUDA, diffusers 0.42.1 and
# himalaya 0.4.11. Results: JSON lines in BENCH_OUT (default target/bench-data/gpu), one file per
# part, and a summary on stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."
part=${1:-all}
case "$part" in ridge|diffusion|all) ;; *) echo "error: expected ridge, diffusion or all, found '$part'" >&2; exit 2 ;; esac
bin=${BRAINRECON_BIN:-${CARGO_TARGET_DIR:-target}/release/brainrecon}
unet_vae=${BENCH_UNET_VAE:-${CARGO_TARGET_DIR:-target}/release/examples/bench_unet_vae}
python=${BENCH_PYTHON:-python3}
out=${BENCH_OUT:-target/bench-data/gpu}
data=${BENCH_DATA_DIR:-target/bench-data}
mkdir -p "$out" "$data"
for f in "$bin" "$unet_vae"; do
  [ -x "$f" ] || { echo "error: $f not found: build with --features cuda first (README, GPU section)" >&2; exit 2; }
done
TORCH_PYTHON=$python source tools/cuda-env.sh
"$python" -c 'import torch; assert torch.cuda.is_available(); print("GPU:", torch.cuda.get_device_name())'

ridge() {
  local log=$out/ridge.jsonl
  : > "$log"
  for workload in D A; do
    for cv in gcv loo; do
      for precision in f32 f64; do
        "$bin" bench ridge --workload $workload --device cuda --cv $cv --precision $precision \
          --data-dir "$data" --json | "$python" -c 'import json,sys; [print(json.dumps(r)) for r in json.load(sys.stdin)]' >> "$log"
        tail -n 1 "$log"
      done
    done
  done
  "$python" tools/bench/ridge_anchors.py --data-dir "$data" --workloads D,A --anchors himalaya_kernel_cuda \
    --timeout 600 --out "$out/ridge_anchors.json"
  "$python" -c 'import json,sys; json.dump([json.loads(l) for l in open(sys.argv[1])], open(sys.argv[2], "w"))' \
    "$log" "$out/ridge.json"
  "$python" tools/bench/ridge_anchors.py --table "$out/ridge.json" "$out/ridge_anchors.json" | tee "$out/ridge_table.md"
}

diffusion() {
  local log=$out/diffusion.jsonl model=${BENCH_SD_DIR:-$data/sd15-random}
  : > "$log"
  # the first CUDA process on a machine compiles candle's kernels for this GPU (kept afterwards)
  local started=$SECONDS
  "$unet_vae" --device cuda --model vae --dtype f16 --steps 1 --json > /dev/null
  echo "{\"impl\": \"brainrecon\", \"bench\": \"first_cuda_process_s\", \"seconds\": $((SECONDS - started))}" | tee -a "$log"
  for dtype in f16 f32; do
    for model in unet vae; do
      "$unet_vae" --device cuda --model $model --dtype $dtype --steps 12 --json | tee -a "$log"
      "$python" tools/bench/diffusers_gpu.py $model --dtype $dtype --steps 12 | tee -a "$log"
    done
  done
  [ -e "$model/model_index.json" ] || "$python" tools/bench/diffusers_gpu.py make-model "$model"
  for run in 1 2 3; do
    local started_ns=$(date +%s%N)
    "$bin" generate --model "$model" --device cuda --dtype f16 --steps 50 --guidance 7.5 --scheduler ddim \
      --prompt "a red circle on a grey background" --out "$out/txt2img.png" --json > "$out/generate.json"
    local whole=$(( ($(date +%s%N) - started_ns) / 1000000 ))
    "$python" -c 'import json,sys; r=json.load(open(sys.argv[1])); r.update(impl="brainrecon", bench="txt2img_512_ddim_cfg7.5", whole_process_ms=int(sys.argv[2])); print(json.dumps(r))' \
      "$out/generate.json" "$whole" | tee -a "$log"
  done
  "$python" tools/bench/diffusers_gpu.py txt2img "$model" --dtype f16 --runs 3 | tee -a "$log"
  # torch.compile takes a minute or two to compile the U-Net: last, and skipped with BENCH_COMPILE=0
  if [ "${BENCH_COMPILE:-1}" != 0 ]; then
    "$python" tools/bench/diffusers_gpu.py unet --dtype f16 --steps 12 --compile | tee -a "$log"
  fi
}

case "$part" in
  ridge) ridge ;;
  diffusion) diffusion ;;
  all) ridge; diffusion ;;
esac
echo "results: $out"
