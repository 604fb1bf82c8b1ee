#!/usr/bin/env bash
# Builds the brainrecon Python wheel (crates/python) with maturin in a virtual environment,
# installs it with the reference libraries (scikit-learn, himalaya, scikit-image) and runs its
# pytest suite. Needs python3 (>= 3.9, with venv) and PyPI. On x86_64 Linux the wheel is the one
# users install (tools/wheel.sh: manylinux_2_28, with the brainrecon binary), so the tests run on
# what ships, and the routes' tests compare the Python package with the wheel's own binary.
#
#   bash tools/python-test.sh            # dev profile (dependencies optimised): quickest build
#   bash tools/python-test.sh --release  # release wheel (what the benchmark uses)
#   bash tools/python-test.sh -- -k ridge  # arguments after -- go to pytest
#
# BRAINRECON_PY_VENV chooses the environment (default target-py/venv), CARGO_TARGET_DIR the
# build directory (default target-py), BRAINRECON_ZERO_COPY_MB the zero-copy check's input size,
# BRAINRECON_CLI the brainrecon binary the routes' images are compared with.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
profile=dev
pytest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --release) profile=release ;;
    --) shift; pytest_args=("$@"); break ;;
    *) echo "error: unknown argument '$1' (expected --release or -- PYTEST-ARGS)" >&2; exit 2 ;;
  esac
  shift
done
python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null; then
  echo "error: $python is required to build and test the Python package" >&2
  exit 2
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target-py}
# relative folders are taken from the repository root (the tests run from another folder)
case "$CARGO_TARGET_DIR" in /*) ;; *) CARGO_TARGET_DIR=$root/$CARGO_TARGET_DIR ;; esac
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))'; then
  echo "error: the Python package needs CPython >= 3.9; $python is $("$python" --version 2>&1)" >&2
  exit 2
fi
venv=${BRAINRECON_PY_VENV:-$CARGO_TARGET_DIR/venv}
case "$venv" in /*) ;; *) venv=$root/$venv ;; esac
if [ ! -x "$venv/bin/python" ] && ! "$python" -m venv "$venv"; then
  echo "error: could not create a virtual environment in $venv with '$python -m venv' (Debian and Ubuntu: apt-get install python3-venv)" >&2
  exit 2
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r crates/python/requirements-test.txt
wheels="$CARGO_TARGET_DIR/wheels-$profile"
rm -rf "$wheels"
start=$(date +%s)
if [ "$(uname -sm)" = "Linux x86_64" ]; then
  # the distributable wheel, its tools in the same environment
  BRAINRECON_WHEEL_TOOLS="$venv" PYTHON="$python" bash tools/wheel.sh "--$profile" --out "$wheels"
else
  # workspace-build: the shared dependencies' features as in `cargo test --workspace`, whose
  # compiled dependencies the wheel then reuses (crates/python/Cargo.toml)
  "$venv/bin/maturin" build --locked --profile "$profile" -m crates/python/Cargo.toml \
    --features workspace-build --interpreter "$venv/bin/python" --out "$wheels"
fi
echo "wheel built in $(( $(date +%s) - start )) s: $(ls "$wheels")"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$wheels"/*.whl
# The routes' tests compare their images with the CLI's bytes: the wheel's binary when it has
# one, else a binary no older than the sources (tools/test.sh builds it first); BRAINRECON_CLI
# names another.
cli="$CARGO_TARGET_DIR/debug/brainrecon"
if [ -z "${BRAINRECON_CLI:-}" ] && [ -x "$venv/bin/brainrecon" ]; then
  export BRAINRECON_CLI="$venv/bin/brainrecon"
elif [ -z "${BRAINRECON_CLI:-}" ] && [ -x "$cli" ] && [ -z "$(find crates -name '*.rs' -newer "$cli" -print -quit)" ]; then
  export BRAINRECON_CLI="$cli"
fi
# run from the tests' folder so that `import brainrecon` is the installed wheel
cd crates/python/tests
"$venv/bin/python" -m pytest -q "${pytest_args[@]}"
