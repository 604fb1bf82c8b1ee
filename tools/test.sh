#!/usr/bin/env bash
# Runs every test of the workspace. The reference fixtures are committed, so no Python is needed.
# The HTML report tests open pages in headless Chromium: Debian's `chromium` is installed when
# missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null; then
  echo "error: cargo is required (install Rust from your distribution or rustup)" >&2
  exit 2
fi
if [ -z "${BRAINRECON_CHROMIUM:-}" ] && ! command -v chromium >/dev/null; then
  echo "installing Debian's chromium for the report tests" >&2
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  elif command -v sudo >/dev/null; then
    sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null
  else
    echo "error: the report tests need Chromium: install Debian's chromium (apt-get install chromium) or set BRAINRECON_CHROMIUM" >&2
    exit 2
  fi
fi
cargo test --workspace --locked "$@"
