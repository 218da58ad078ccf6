#!/usr/bin/env bash
# Conformance of kubeinvoke-emulator with the official Azure SDK for Python.
# Usage: bash emulator/conformance/run.sh [pytest args]
# Env:   KUBEINVOKE_EMULATOR  emulator binary (default: <repo>/target/debug/kubeinvoke-emulator)
#        KUBEINVOKE_CACHE     cache dir for the virtualenv (default: $HOME/.cache/kubeinvoke)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${KUBEINVOKE_CACHE:-$HOME/.cache/kubeinvoke}"
venv="$cache/venv"
bin="${KUBEINVOKE_EMULATOR:-$repo/target/debug/kubeinvoke-emulator}"

if [[ ! -x "$bin" ]]; then
  echo "run.sh: emulator binary not found at '$bin'." >&2
  echo "        Build it first: cargo build -p kubeinvoke-emulator (or set KUBEINVOKE_EMULATOR)." >&2
  exit 1
fi
if [[ ! -x "$venv/bin/python" ]]; then
  mkdir -p "$cache"
  python3 -m venv "$venv"
fi
# Install (or repair) the pinned set only when requirements changed.
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  echo "$want" > "$stamp"
fi
export KUBEINVOKE_EMULATOR="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
cd "$here"
export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@" .
