#!/usr/bin/env bash
# The long fuzz run, within BUDGET seconds (default 5400):
#  - the reader targets (crates/datasets/tests/fuzz_readers.rs): CASES mutated files per target
#    (default 12000; 26 targets, so 312,000 cases), and 20 × CASES pickles built opcode by
#    opcode (pickle_programs);
#  - the command targets (crates/cli/tests/fuzz_commands.rs): COMMAND_CASES runs of the
#    brainrecon binary per command on mutated inputs (default 150; 35 targets, 5,250 runs).
# SEED defaults to 1 (CI runs 150 reader and 12 command cases per target from seed 0).
# It uses the test build (the one `cargo test` makes): integer overflow is checked there, so an
# overflow a release build would wrap silently is a panic the run reports.
# Failing cases are kept in <target dir>/tmp/fuzz-crashers/ (CARGO_TARGET_DIR is honoured).
#   bash tools/fuzz.sh            # CASES=50000 COMMAND_CASES=1000 SEED=7 BUDGET=14400 bash tools/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export BRAINRECON_FUZZ_CASES="${CASES:-12000}" BRAINRECON_FUZZ_SEED="${SEED:-1}"
export BRAINRECON_FUZZ_COMMAND_CASES="${COMMAND_CASES:-150}"
started=$(date +%s)
status=0
timeout "${BUDGET:-5400}" cargo test --locked --workspace --no-fail-fast \
    --test fuzz_readers --test fuzz_commands -- --nocapture --test-threads 2 2>&1 |
    grep -E "cases|panicked|→|test result|kept as|brainrecon " || status=$?
echo "seed ${BRAINRECON_FUZZ_SEED}: ${BRAINRECON_FUZZ_CASES} cases per reader," \
    "${BRAINRECON_FUZZ_COMMAND_CASES} per command, $(( $(date +%s) - started )) s"
exit "${status}"
