#!/usr/bin/env bash
# The long run of the reader fuzz targets (crates/data/tests/fuzz_readers.rs): CASES mutated
# files per target (default 12000; 10 targets, so 120,000 cases) from SEED (default 1; CI
# runs 150 per target from seed 0), in release, within BUDGET seconds (default 3600).
# Failing cases are kept in <target dir>/tmp/fuzz-crashers/ (CARGO_TARGET_DIR is honoured).
#   bash tools/fuzz.sh            # CASES=50000 SEED=7 BUDGET=7200 bash tools/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export BRAINRECON_FUZZ_CASES="${CASES:-12000}" BRAINRECON_FUZZ_SEED="${SEED:-1}"
started=$(date +%s)
timeout "${BUDGET:-3600}" cargo test --release --locked -p brainrecon-data --test fuzz_readers \
    -- --nocapture --test-threads 2 2>&1 | grep -E "cases|panicked|→|test result"
echo "seed ${BRAINRECON_FUZZ_SEED}, ${BRAINRECON_FUZZ_CASES} cases per target, $(( $(date +%s) - started )) s"
