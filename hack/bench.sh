#!/usr/bin/env bash
# make bench: scenarios A (1000 AKS run commands through the operator), B (10 000 finished
# RemoteCommands + 1 000 KubeconfigExports at rest) and C (the same 1000 commands through the Azure
# SDK for Python), D (a fleet: 10 subscriptions with a principal each, 300 commands each), E
# (`kubectl invoke`: 20 runs one at a time, then 200 at once), F (KubeconfigExport refreshes) and G
# (one RemoteCommandSet over 500 clusters a selector finds in 10 subscriptions, with maxConcurrency
# 50 and without a limit) against a throw-away local control plane and the emulator with ARM's real
# token buckets; writes bench/RESULTS.md.
#   hack/bench.sh                  release build, all scenarios (about 15 minutes after the build)
#   hack/bench.sh --scenarios G    only these (letters, comma-separated): their sections replace
#                                  the old ones in bench/RESULTS.md, the other sections stay
#   hack/bench.sh --smoke          debug build, small N, report in a temp dir (part of make test)
# Extra arguments go to kubeinvoke-bench (e.g. --client-budget 0.9,1.0, --sdk-concurrency 64).
# KUBEINVOKE_BENCH_LOG_LEVEL sets the operator's log filter (default info), e.g.
#   info,kubeinvoke::controllers::remote_command=debug  (why each run was turned away, and when)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$HERE/.."

smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi

# The instruction count (valgrind, a profiling build) goes with scenario A.
scenarios=A
prev=
for arg in "$@"; do
  if [ "$prev" = --scenarios ]; then scenarios=$arg; fi
  case "$arg" in --scenarios=*) scenarios=${arg#--scenarios=} ;; esac
  prev=$arg
done
with_a=0
if [[ ",${scenarios^^}," == *,A,* ]]; then with_a=1; fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/kubeinvoke-bench.XXXXXX")
trap '"$HERE/cluster.sh" down "$dir/cluster" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT

# The Azure SDK for Python (scenario C): the conformance tests' virtualenv, same pinned set.
cache="${KUBEINVOKE_CACHE:-$HOME/.cache/kubeinvoke}"
venv="$cache/venv"
req=emulator/conformance/requirements.txt
if [[ ! -x "$venv/bin/python" ]]; then mkdir -p "$cache"; python3 -m venv "$venv"; fi
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ ! -f "$venv/.requirements.sha256" || "$(cat "$venv/.requirements.sha256")" != "$want" ]]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  echo "$want" > "$venv/.requirements.sha256"
fi

if [ "$smoke" = 1 ]; then
  cargo build --workspace --bins
  bin=target/debug
  scratch=$dir
  set -- --commands 30 --rest-commands 300 --rest-exports 30 --fleet-subscriptions 3 --fleet-commands 10 --cli-sequential 3 --cli-concurrent 10 --refresh-exports 5 \
    --set-subscriptions 2 --set-clusters 5 --set-export-interval 0 --out "$dir/RESULTS.md" \
    --label "hack/bench.sh --smoke" --require-success "$@"
else
  echo "bench: building the release binaries (a few minutes the first time)"
  cargo build --release --workspace --bins
  if [ "$with_a" = 1 ]; then
    # The instruction count per command runs the operator under valgrind's callgrind.
    if ! command -v valgrind >/dev/null; then
      [ "$(id -u)" = 0 ] || { echo "bench: valgrind is missing; install it (needs root)" >&2; exit 1; }
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind >/dev/null
    fi
    cargo build --profile profiling --bin kubeinvoke
    set -- --instructions-commands 50 --instructions-operator target/profiling/kubeinvoke "$@"
  fi
  bin=target/release
  scratch="${TMPDIR:-/tmp}/kubeinvoke-bench-logs"
fi

"$HERE/cluster.sh" up "$dir/cluster" >/dev/null
"$bin/kubeinvoke-bench" --cluster-dir "$dir/cluster" --scratch "$scratch" \
  --operator "$bin/kubeinvoke" --emulator "$bin/kubeinvoke-emulator" \
  --python "$venv/bin/python" "$@"
