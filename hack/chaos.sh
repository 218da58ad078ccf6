#!/usr/bin/env bash
# make chaos: the chaos tests (tests/chaos.rs) at full size — 200 commands while the operator is
# SIGKILLed at random moments, the API server restarted mid-run, ARM at 30% 429 and 5% 5xx — the
# bad-input table (tests/bad_input.rs), and the parser property tests with many cases for a bounded
# time. Against a throw-away local control plane, like make e2e.
#   KUBEINVOKE_CHAOS_COMMANDS (default 200), PROPTEST_CASES (default 20000),
#   KUBEINVOKE_CHAOS_PROPTEST_SECONDS (default 300), KUBEINVOKE_CHAOS_SEED (replay a run)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$HERE/.."

export KUBEINVOKE_CHAOS_COMMANDS=${KUBEINVOKE_CHAOS_COMMANDS:-200}
export PROPTEST_CASES=${PROPTEST_CASES:-20000}
budget=${KUBEINVOKE_CHAOS_PROPTEST_SECONDS:-300}

cargo build --workspace --bins
echo "chaos: parser property tests, $PROPTEST_CASES cases each (at most ${budget}s)"
cargo test -p kubeinvoke --lib --no-run
timeout --signal=TERM "$budget" cargo test -p kubeinvoke --lib parser_props -- --test-threads 2 || {
  rc=$?
  if [ "$rc" -eq 124 ]; then echo "chaos: property tests stopped after ${budget}s without a failure (time bound)"; else exit "$rc"; fi
}
echo "chaos: $KUBEINVOKE_CHAOS_COMMANDS commands under SIGKILLs, an API server restart and heavy throttling; bad input"
PROPTEST_CASES=64 "$HERE/e2e.sh" --test chaos --test bad_input -- --nocapture
