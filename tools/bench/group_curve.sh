#!/usr/bin/env bash
# The new-subject curve of the README: a simulated group of 5 subjects (subj02–05 the group,
# subj01 the new subject), for several shares of individual tuning. The x axis is the new
# subject's first train trials (TRIALS, comma-separated, `all` for every one), labelled with
# NSD's minutes (4 s a trial); each point is the mean ± s.d. over SEEDS validation/test splits.
#   tools/bench/group_curve.sh OUT [SHARES] [IMAGES] [SHARED] [SESSIONS] [TRIALS] [SEEDS]
# GENERATOR=population simulates the group with the second, independently written generative
# model (`simulate --generator population`; default: fields, today's).
# Writes OUT/rho-<share>/curve/{curve.json,curve.md,curve.svg} and OUT/curves.md.
set -euo pipefail
out=${1:?usage: group_curve.sh OUT [SHARES] [IMAGES] [SHARED] [SESSIONS] [TRIALS] [SEEDS]}
shares=${2:-0.1,0.3,0.6}
images=${3:-400}
shared=${4:-200}
sessions=${5:-10}
trials=${6:-100,250,500,750,1500,all}
seeds=${7:-3}
br=${BRAINRECON:-brainrecon}
generator=${GENERATOR:-fields}
mkdir -p "$out"
: > "$out/curves.md"
for rho in ${shares//,/ }; do
  dir="$out/rho-$rho"
  rm -rf "$dir" && mkdir -p "$dir"
  "$br" simulate --generator "$generator" --subjects 5 --individual-share "$rho" --images "$images" --shared-images "$shared" \
    --sessions "$sessions" --seed 1 --out "$dir/sim" > /dev/null
  for s in 2 3 4 5; do
    "$br" nsd prepare --nsd-root "$dir/sim" --subject "subj0$s" --out "$dir/subj0$s" > /dev/null
    "$br" features --subject "$dir/subj0$s" --kind z --model shapes-ldm > /dev/null
    "$br" features --subject "$dir/subj0$s" --kind c --model shapes-ldm > /dev/null
  done
  "$br" group prepare --subject "$dir/subj02" --subject "$dir/subj03" --subject "$dir/subj04" \
    --subject "$dir/subj05" --out "$dir/group" > /dev/null
  "$br" group fit --group "$dir/group" --method shared --k 64 > /dev/null
  "$br" group fit --group "$dir/group" --method srm --k 32 > /dev/null
  "$br" group curve --group "$dir/group" --space srm:features:encoding \
    --space shared:features:encoding --space shared:features:ridge \
    --space srm:shared-images:orthogonal --space srm:shared-images:procrustes \
    --nsd-root "$dir/sim" --subject subj01 --trials "$trials" --seeds "$seeds" --out "$dir/curve" > /dev/null
  { echo "**Individual share $rho**"; echo; cat "$dir/curve/curve.md"; echo; } >> "$out/curves.md"
done
cat "$out/curves.md"
