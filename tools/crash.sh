#!/usr/bin/env bash
# The long crash campaign (crates/cli/tests/crash.rs): every command that writes is killed with
# SIGKILL KILLS times (default 500; CI kills 50) at seeded random instants of its run, each kill
# followed by a rerun that must end in the unbroken run's bytes or refuse naming the output;
# then the full-disk and read-only cases (tmpfs mounts; left out where mounting is not allowed).
# SEED defaults to 1 (CI's is 0); BUDGET (default 600) bounds the seconds of one command's
# kills, so the slow commands make fewer; THREADS (default 2) commands run at once. It uses the test build, as `cargo test` makes it.
# Prints one line of outcomes per command and the total.
# Arguments filter the commands by test name, as `cargo test` does (train_ for the trainers).
#   bash tools/crash.sh            # KILLS=2000 SEED=5 bash tools/crash.sh train_
set -euo pipefail
cd "$(dirname "$0")/.."
export BRAINRECON_CRASH_KILLS="${KILLS:-500}" BRAINRECON_CRASH_SEED="${SEED:-1}"
export BRAINRECON_CRASH_BUDGET_SECONDS="${BUDGET:-600}"
started=$(date +%s)
log=$(mktemp)
status=0
cargo test --locked --workspace --no-fail-fast --test crash -- --include-ignored --nocapture --test-threads "${THREADS:-2}" "$@" \
    > "$log" 2>&1 || status=$?
grep -E "kills of a|panicked|test result|note:" "$log" || true
[ "$status" = 0 ] || tail -n 40 "$log"
rm -f "$log"
echo "seed ${BRAINRECON_CRASH_SEED}: up to ${BRAINRECON_CRASH_KILLS} kills per command within ${BRAINRECON_CRASH_BUDGET_SECONDS} s, $(( $(date +%s) - started )) s"
exit "${status}"
