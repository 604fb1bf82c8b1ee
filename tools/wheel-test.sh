#!/usr/bin/env bash
# Installs the wheel tools/wheel.sh built into a fresh virtual environment and uses it as a user
# would, with no Rust toolchain on PATH: the `brainrecon` command runs the demo's linear route on
# a small synthetic subject, the Python package reconstructs the same test images and must write
# the same bytes, and the command's exit codes and signal handling are the binary's own.
#
#   bash tools/wheel-test.sh [WHEEL]   # default: the one wheel in target-wheel/dist
#
# Needs python3 (>= 3.9, with venv; PYTHON chooses another) and PyPI for numpy, scikit-learn and
# Pillow. Prints the install time and the wheel's size.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
if [ $# -gt 1 ]; then
  echo "error: expected at most one argument, the wheel" >&2
  exit 2
fi
if [ $# = 1 ]; then
  wheel=$1
else
  wheels=("${CARGO_TARGET_DIR:-$root/target-wheel}"/dist/brainrecon-*.whl)
  wheel=${wheels[0]}
fi
case "$wheel" in /*) ;; *) wheel=$root/$wheel ;; esac
if [ ! -f "$wheel" ]; then
  echo "error: no wheel at $wheel (build one with: bash tools/wheel.sh)" >&2
  exit 2
fi
python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null \
    || ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))'; then
  echo "error: the wheel's test needs CPython >= 3.9 with venv as \$PYTHON or python3" >&2
  exit 2
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/brainrecon-wheel-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
venv=$work/venv
"$python" -m venv "$venv"
# Binary packages only: nothing may be compiled on the way in. The Rust toolchain is not on PATH.
start=$EPOCHREALTIME
env PATH="$venv/bin:/usr/bin:/bin" "$venv/bin/python" -m pip install -q --disable-pip-version-check \
  --only-binary :all: "$wheel[images]"
install_s=$("$venv/bin/python" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start" "$EPOCHREALTIME")

# Everything below runs as a user's shell would with only the environment's bin/ on PATH.
mkdir -p "$work/home"
as_user=(env -i HOME="$work/home" PATH="$venv/bin" LANG=C.UTF-8)
user() {
  "${as_user[@]}" "$@"
}
user /bin/sh -c 'command -v cargo || command -v rustc' && { echo "error: a Rust toolchain is on the test's PATH" >&2; exit 1; }
installed=$venv/bin/brainrecon
# `brainrecon` is the binary itself (from the wheel's .data/scripts), not a Python launcher.
if [ "$(head -c 4 "$installed" | od -An -c | tr -d ' ')" != '177ELF' ]; then
  echo "error: $installed is not the brainrecon binary" >&2
  exit 1
fi
version=$(basename "$wheel" | cut -d- -f2)
[ "$(user brainrecon --version)" = "brainrecon $version" ] \
  || { echo "error: 'brainrecon --version' does not say $version" >&2; exit 1; }

# The demo's linear route, small: 60 images (6 test images), 1 sample of 4 DDIM steps.
demo=$work/demo
user brainrecon demo --out "$demo" --images 60 --samples 1 --steps 4 --json >"$work/demo.json" \
  2>"$work/demo.err" || { cat "$work/demo.err" >&2; exit 1; }
user python - "$work/demo.json" <<'EOF'
import json, sys
from pathlib import Path
summary = json.loads(Path(sys.argv[1]).read_text())
assert summary["route"] == "linear" and summary["n_test"] == 6, summary
for name in ("pairs", "report", "metrics"):
    assert Path(summary[name]).is_file(), (name, summary[name])
print(f"demo: {summary['n_test']} test images, two-way identification of the reconstructions "
      f"{summary['two_way_pixels']:.3f} (chance 0.5)")
EOF

# The Python route from the same wheel: the demo's subject and decoders, its settings, two test
# images; the images are the command's, byte for byte.
user python - "$demo" "$work/python-recons" <<'EOF'
import sys
from pathlib import Path
import brainrecon
demo, out = Path(sys.argv[1]), Path(sys.argv[2])
recons = brainrecon.reconstruct(demo / "subj01", demo / "decoders", model="shapes-ldm",
                                samples=1, steps=4, seed=1, out=out, limit=2)
assert len(recons) == 2 and recons.images[0][0].mode == "RGB"
for stimulus_id in recons.ids:
    name = f"sample-1/{stimulus_id}.png"
    assert (out / name).read_bytes() == (demo / "recons" / name).read_bytes(), name
print(f"python: brainrecon.reconstruct wrote the command's images for {recons.ids}")
EOF

# Bad input: exit code 2 and a message that names the file.
set +e
user brainrecon reconstruct --subject "$work/no-such-subject" --decoders "$demo/decoders" \
  --out "$work/bad" >"$work/bad.out" 2>"$work/bad.err"
code=$?
set -e
if [ "$code" != 2 ] || ! grep -q "no-such-subject" "$work/bad.err"; then
  echo "error: a missing subject gave exit code $code (expected 2 and its path); stderr:" >&2
  cat "$work/bad.err" >&2
  exit 1
fi

# SIGTERM stops a reconstruction after the image it is on, with exit code 143 (what Slurm's
# preemption relies on); the same command then resumes and finishes.
slow=(reconstruct --subject "$demo/subj01" --decoders "$demo/decoders" --model shapes-ldm
  --out "$work/stopped" --samples 1 --steps 100 --seed 1 --limit 3)
# env execs the binary, so $! is the binary's own process
"${as_user[@]}" brainrecon "${slow[@]}" >"$work/stopped.out" 2>"$work/stopped.err" &
pid=$!
for _ in $(seq 600); do
  compgen -G "$work/stopped/sample-1/*.png" >/dev/null && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.2
done
kill -TERM "$pid" 2>/dev/null || true
set +e
wait "$pid"
code=$?
set -e
if [ "$code" != 143 ] || ! grep -q "stopped by a signal" "$work/stopped.err"; then
  echo "error: SIGTERM gave exit code $code (expected 143 after the current image); stderr:" >&2
  cat "$work/stopped.err" >&2
  exit 1
fi
user brainrecon "${slow[@]}" >/dev/null 2>"$work/resumed.err" \
  || { cat "$work/resumed.err" >&2; exit 1; }

echo "wheel: $(basename "$wheel"), $(du -k "$wheel" | cut -f1) KiB; pip install with numpy, scikit-learn and Pillow: $install_s s, $(du -sk "$venv" | cut -f1) KiB installed"
echo "the wheel's test passed: the command, the Python route, exit codes and SIGTERM without a Rust toolchain"
