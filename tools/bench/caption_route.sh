#!/usr/bin/env bash
# The caption route next to the linear route on the demo's synthetic subject (600 images, 60
# test, 2 samples each, 25 DDIM steps, seed 1, shapes-ldm and shapes-blip): `brainrecon demo`
# with each route on the same subject and z decoder, then a Markdown table of both: how often
# the reconstructions show the scene's colour and shape, the pixel metrics of `eval`, and what
# the decoded captions name (and the ceiling: captions of the stimuli's own tokens).
#   bash tools/bench/caption_route.sh [DIR]     # default target/bench-data/caption-route
# Env: BRAINRECON_BIN (default: the release build, built here).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-target/bench-data/caption-route}
if [ -z "${BRAINRECON_BIN:-}" ]; then
  cargo build --release --locked -p brainrecon-cli
  bin="${CARGO_TARGET_DIR:-target}"/release/brainrecon
else
  bin=$BRAINRECON_BIN
fi
$bin demo --out "$dir" > /dev/null
$bin demo --out "$dir" --route caption > /dev/null
$bin caption --subject "$dir/subj01" --decoders "$dir/decoders" --source features \
  --out "$dir/ceiling" > /dev/null
python3 - "$dir" <<'EOF'
import json, sys
from pathlib import Path

d = Path(sys.argv[1])
pct = lambda v: f"{100 * v:.0f}%"
print("| route | colour right | shape right | both | PixCorr | SSIM | two-way (pixels) |")
print("|---|---|---|---|---|---|---|")
for route, summary, recons in [("linear: decoded z + decoded c", "demo.json", "recons"),
                               ("caption: decoded z + decoded caption", "demo-caption.json",
                                "recons-caption")]:
    s = json.loads((d / summary).read_text())
    rows = json.loads((d / recons / "eval" / "metrics.json").read_text())["rows"]
    mean = next(r for r in rows if r["name"].startswith("reconstruction"))
    a = s["reconstruction"]
    print(f"| {route} | {pct(a['colour'])} | {pct(a['shape'])} | {pct(a['both'])} | "
          f"{mean['pixcorr']:.3f} | {mean['ssim']:.3f} | {mean['two_way_pixels']:.3f} |")

shape_words = {"circle": ["circle", "round", "disc"], "square": ["square", "box"],
               "triangle": ["triangle", "triangular"], "cross": ["cross", "plus"]}
print("\n| captions | colour named | shape named | both |")
print("|---|---|---|---|")
for name, folder in [("decoded from the betas", "captions"), ("the stimuli's own tokens", "ceiling")]:
    items = json.loads((d / folder / "captions.json").read_text())["items"]
    hits = [0, 0, 0]
    for item in items:
        _, _, colour, shape, *_ = item["true_captions"][0].split()
        words = item["caption"].split()
        named = [colour in words, any(w in words for w in shape_words[shape])]
        hits = [hits[0] + named[0], hits[1] + named[1], hits[2] + all(named)]
    print(f"| {name} ({len(items)}) | " + " | ".join(pct(h / len(items)) for h in hits) + " |")
EOF
