#!/usr/bin/env bash
# Builds the wheel users install: `pip install brainrecon-*.whl` gives the Python package and the
# `brainrecon` command, with no Rust toolchain and no system library. One manylinux_2_28 abi3
# wheel serves every CPython >= 3.9 on x86_64 Linux with glibc >= 2.28 (Debian 10, Ubuntu
# 18.10, RHEL 8 and later).
#
#   bash tools/wheel.sh                # release wheel in target-wheel/dist
#   bash tools/wheel.sh --dev          # dev profile (dependencies optimised): what CI tests
#   bash tools/wheel.sh --out DIR      # where the wheel goes (default $CARGO_TARGET_DIR/dist)
#
# maturin builds the extension and cargo the binary; both are linked by zig (PyPI's `ziglang`,
# through cargo-zigbuild's `zig cc`) against glibc 2.28's symbol versions, so that they run on
# older systems than the one that built them. Only the last link is zig's: every dependency is
# compiled as a plain `cargo build` compiles it, so --dev in the tests' target folder
# (tools/test.sh) reuses that build's dependencies. The binary goes in the wheel's
# `.data/scripts`, which pip installs into the environment's bin/ as it is (ruff and uv ship
# their binaries so): `brainrecon` is then the binary itself, not a Python shim, with its own
# exit codes, output and signals. `auditwheel show` checks the result.
#
# CARGO_TARGET_DIR: the build folder (default target-wheel; tools/test.sh passes its own).
# BRAINRECON_WHEEL_TOOLS: the virtual environment of the build tools (default
# $CARGO_TARGET_DIR/wheel-tools; made when missing, from PyPI). PYTHON: the interpreter that
# makes it (default python3, >= 3.9).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
profile=release
out=
while [ $# -gt 0 ]; do
  case "$1" in
    --dev) profile=dev ;;
    --release) profile=release ;;
    --out)
      [ $# -ge 2 ] || { echo "error: --out needs a folder" >&2; exit 2; }
      out=$2
      shift
      ;;
    *) echo "error: unknown argument '$1' (expected --dev, --release or --out DIR)" >&2; exit 2 ;;
  esac
  shift
done
if ! command -v cargo >/dev/null; then
  echo "error: cargo is required to build the wheel (install Rust from your distribution or rustup)" >&2
  exit 2
fi
if [ "$(uname -sm)" != "Linux x86_64" ]; then
  echo "error: the wheel is built on x86_64 Linux (this is $(uname -sm))" >&2
  exit 2
fi
python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null \
    || ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))'; then
  echo "error: building the wheel needs CPython >= 3.9 with venv as \$PYTHON or python3" >&2
  exit 2
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target-wheel}
case "$CARGO_TARGET_DIR" in /*) ;; *) CARGO_TARGET_DIR=$root/$CARGO_TARGET_DIR ;; esac
out=${out:-$CARGO_TARGET_DIR/dist}
case "$out" in /*) ;; *) out=$root/$out ;; esac
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

# The build tools, pinned (crates/python/requirements-wheel.txt): maturin, zig, cargo-zigbuild's
# `zig cc` (it turns rustc's link line into zig's), auditwheel and wheel.
tools=${BRAINRECON_WHEEL_TOOLS:-$CARGO_TARGET_DIR/wheel-tools}
case "$tools" in /*) ;; *) tools=$root/$tools ;; esac
if [ ! -x "$tools/bin/python" ] && ! "$python" -m venv "$tools"; then
  echo "error: could not create a virtual environment in $tools with '$python -m venv' (Debian and Ubuntu: apt-get install python3-venv)" >&2
  exit 2
fi
"$tools/bin/python" -m pip install -q --disable-pip-version-check \
  -r crates/python/requirements-wheel.txt

# The manylinux version: the oldest glibc whose symbol versions the binaries may use.
glibc=2.28
zig_cc=$tools/bin/zig-cc-glibc-$glibc
cat >"$zig_cc.tmp" <<EOF
#!/bin/sh
# rustc's linker for tools/wheel.sh: zig links against glibc $glibc's symbol versions.
PATH="$tools/bin:\$PATH" exec "$tools/bin/cargo-zigbuild" zig cc -- -g -fno-sanitize=all -target x86_64-linux-gnu.$glibc "\$@"
EOF
chmod +x "$zig_cc.tmp"
mv "$zig_cc.tmp" "$zig_cc"
# Release: the symbol tables go, from the binary as from the extension (maturin's --strip); a
# panic's message still names the file and line. Dev keeps them, as the tests' build does.
link_args=(-C "linker=$zig_cc")
maturin_strip=()
if [ "$profile" = release ]; then
  link_args+=(-C strip=symbols)
  maturin_strip=(--strip)
fi
profile_dir=$([ "$profile" = dev ] && echo debug || echo release)

start=$(date +%s)
# The binary. workspace-build: its dependencies' features as in `cargo test --workspace`
# (crates/cli/Cargo.toml), which the Python bindings also take, so the two share them.
cargo rustc --locked --profile "$profile" -p brainrecon-cli --bin brainrecon \
  --features workspace-build -- "${link_args[@]}"
binary=$CARGO_TARGET_DIR/$profile_dir/brainrecon
echo "binary built in $(( $(date +%s) - start )) s"

# The extension module, tagged manylinux_2_28: maturin checks its symbol versions against the
# tag and fails when one is newer.
staging=$(mktemp -d "${TMPDIR:-/tmp}/brainrecon-wheel.XXXXXX")
trap 'rm -rf "$staging"' EXIT
"$tools/bin/maturin" build --locked --profile "$profile" -m crates/python/Cargo.toml \
  --features workspace-build --interpreter "$tools/bin/python" \
  --compatibility "manylinux_${glibc//./_}" "${maturin_strip[@]}" --out "$staging/maturin" \
  -- "${link_args[@]}"
built=("$staging"/maturin/brainrecon-*.whl)
[ ${#built[@]} = 1 ] && [ -f "${built[0]}" ] || { echo "error: maturin left no single wheel in $staging/maturin" >&2; exit 1; }

# The binary joins the wheel as a script; `wheel pack` writes the RECORD anew with its hash.
"$tools/bin/python" -m wheel unpack -d "$staging/unpacked" "${built[0]}" >/dev/null
unpacked=("$staging"/unpacked/brainrecon-*)
dist_name=$(basename "${unpacked[0]}")
mkdir -p "${unpacked[0]}/$dist_name.data/scripts"
install -m 755 "$binary" "${unpacked[0]}/$dist_name.data/scripts/brainrecon"
mkdir -p "$out"
rm -f "$out"/brainrecon-*.whl
"$tools/bin/python" -m wheel pack -d "$out" "${unpacked[0]}" >/dev/null
wheel=("$out"/brainrecon-*.whl)

# auditwheel reads every ELF file in the wheel (the extension and the binary) and names the
# oldest manylinux policy they all satisfy; anything newer than glibc 2.28 fails here.
audit=$("$tools/bin/auditwheel" show "${wheel[0]}")
echo "$audit"
tag=$(tr '\n' ' ' <<<"$audit" | grep -oE 'platform tags?: +"manylinux_2_[0-9]+_x86_64"' \
  | grep -oE 'manylinux_2_[0-9]+_x86_64' | head -1 || true)
minor=${tag#manylinux_2_}
minor=${minor%_x86_64}
if [ -z "$tag" ] || [ "$minor" -gt "${glibc#2.}" ]; then
  echo "error: auditwheel calls ${wheel[0]} '${tag:-no manylinux tag}', not manylinux_${glibc//./_} or older" >&2
  exit 1
fi
echo "wheel: ${wheel[0]} ($(du -k "${wheel[0]}" | cut -f1) KiB, $tag, built in $(( $(date +%s) - start )) s)"
