#!/usr/bin/env bash
# Runs every test of the workspace. The reference fixtures are committed, so no Python is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null; then
  echo "error: cargo is required (install Rust from your distribution or rustup)" >&2
  exit 2
fi
cargo test --workspace --locked "$@"
