#!/usr/bin/env bash
# Runs every test of the workspace, then the Python package's (crates/python: its wheel is
# built with maturin in a virtual environment under the target folder and tested against
# scikit-learn and himalaya from PyPI, then installed alone into a fresh environment and run
# without cargo; BRAINRECON_TEST_PYTHON=0 leaves them out). The Rust tests'
# reference fixtures are committed, so they need no Python. The HTML report tests open pages in
# headless Chromium: Debian's `chromium` is installed when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null; then
  echo "error: cargo is required (install Rust from your distribution or rustup)" >&2
  exit 2
fi
# The HTML report's browser test needs headless Chromium; install Debian's package when missing.
if [ -z "${BRAINRECON_CHROMIUM:-}" ] && ! command -v chromium >/dev/null \
    && ! command -v chromium-browser >/dev/null && ! command -v google-chrome >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
  elif command -v sudo >/dev/null; then
    SUDO="sudo"
  else
    echo "error: chromium is required by the report's browser test; install Debian's 'chromium' package as root (apt-get install chromium) or set BRAINRECON_CHROMIUM" >&2
    exit 2
  fi
  if ! command -v apt-get >/dev/null; then
    echo "error: chromium is required by the report's browser test and apt-get is not available; install Chromium and put it on PATH or set BRAINRECON_CHROMIUM" >&2
    exit 2
  fi
  echo "installing chromium (needed by the report's browser test)" >&2
  if ! { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }; then
    echo "error: could not install chromium with apt-get; install Debian's 'chromium' package or set BRAINRECON_CHROMIUM" >&2
    exit 2
  fi
fi
# With BRAINRECON_TEST_SLURM=1 (CI sets it) the cluster test (crates/cli/tests/slurm_cluster.rs)
# runs on a one-node Slurm started here from Debian's packages (installed when missing; root
# only) and stopped when the tests end; without it that test says it was left out.
if [ "${BRAINRECON_TEST_SLURM:-0}" = 1 ]; then
  slurm_state="${TMPDIR:-/tmp}/brainrecon-slurm-test-$$"
  bash tools/slurm/one-node.sh start "$slurm_state"
  export SLURM_CONF="$slurm_state/slurm.conf"
  trap 'bash tools/slurm/one-node.sh stop "$slurm_state"' EXIT
fi
# A one-off build: incremental state would only add time and disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# Tests run two at a time, each with its own processes: candle's process-wide pool of spinning
# threads for elementwise ops would then spin on the cores the other test needs (the B2C
# ablation test took 394 s with it on a quiet 2-core machine, 307 s without it under load 5).
# Matrix products keep their threads (RAYON_NUM_THREADS).
export CANDLE_NUM_THREADS="${CANDLE_NUM_THREADS:-1}"
# Formatting first: the cheapest check fails quickest (the tree is rustfmt-clean).
if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --all --check
else
  echo "note: rustfmt is not installed (rustup component add rustfmt); formatting was not checked" >&2
fi
# Then clippy with the workspace's lints table (Cargo.toml), warnings as errors.
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --workspace --all-targets --locked --quiet -- -D warnings
else
  echo "note: clippy is not installed (rustup component add clippy); lints were not checked" >&2
fi
# Then the API docs, warnings as errors: a doc link that names no item (one moved or renamed)
# fails here (`broken_intra_doc_links = "deny"` in Cargo.toml's lints table).
RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -D warnings" cargo doc --workspace --no-deps --locked --quiet
cargo test --workspace --locked "$@"
# The guide (docs/, an mdBook; book.toml at the root) builds without a warning. Its links and
# anchors were checked above (crates/cli/tests/docs_links.rs): mdBook checks neither. mdBook
# is built from crates.io when missing (2–3 minutes on 2 cores), into a folder of its own.
if [ "${BRAINRECON_TEST_BOOK:-1}" = 1 ]; then
  mdbook_version=0.5.4
  mdbook_root=${BRAINRECON_MDBOOK_ROOT:-$HOME/.local/brainrecon-mdbook-$mdbook_version}
  if [ ! -x "$mdbook_root/bin/mdbook" ]; then
    echo "installing mdbook $mdbook_version (builds the guide)" >&2
    cargo install mdbook --locked --version "$mdbook_version" --no-default-features \
      --root "$mdbook_root" --quiet
  fi
  book_log=$("$mdbook_root/bin/mdbook" build 2>&1) || { echo "$book_log" >&2; exit 1; }
  if grep -E 'WARN|ERROR' <<<"$book_log" >&2; then
    echo "error: mdbook build warned (above)" >&2
    exit 1
  fi
  echo "the guide: target/book/index.html"
else
  echo "note: the guide's build was left out (BRAINRECON_TEST_BOOK=0)" >&2
fi
# The Python package, built in the same target folder: only the bindings and the binary's own
# crate compile anew. On x86_64 Linux its wheel is the one users install (tools/wheel.sh, with
# the binary), then installed into a fresh environment and used without the Rust toolchain.
if [ "${BRAINRECON_TEST_PYTHON:-1}" = 1 ]; then
  CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(pwd)/target}" bash tools/python-test.sh
  if [ "$(uname -sm)" = "Linux x86_64" ]; then
    bash tools/wheel-test.sh "${CARGO_TARGET_DIR:-$(pwd)/target}"/wheels-dev/brainrecon-*.whl
  fi
else
  echo "note: the Python package's tests were left out (BRAINRECON_TEST_PYTHON=0)" >&2
fi
# With BRAINRECON_TEST_CUDA_BUILD=1 (CI sets it), the GPU build's code and its tests are also
# compiled (checked, not linked or run: that needs a GPU). The compiler comes from NVIDIA's PyPI
# wheels; nvcc compiling candle's kernels takes most of the time.
if [ "${BRAINRECON_TEST_CUDA_BUILD:-0}" = 1 ]; then
  prefix=${CUDA_PREFIX:-$HOME/.local/brainrecon-cuda13}
  [ -x "$prefix/bin/nvcc" ] || bash tools/cuda-toolkit.sh --compiler-only "$prefix"
  # shellcheck source=/dev/null
  source "$prefix/env.sh"
  # Checked, never linked or run here: the kernels' device code need not be optimised, which
  # halves nvcc's time on candle's static GGUF/MoE kernels (one of them: 58 s → 26 s).
  export NVCC_APPEND_FLAGS="${NVCC_APPEND_FLAGS:--Xcicc -O0 -Xptxas -O0}"
  # The whole workspace in the tests' target folder: its procedural macros and build scripts
  # (about 90 crates) are reused from the test build instead of compiled again.
  cargo check --locked --workspace --tests --examples \
    --features brainrecon-cli/cuda,brainrecon-diffusion/cuda,brainrecon-ridge/cuda
fi
