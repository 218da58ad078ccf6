#!/usr/bin/env bash
# Conformance of kubeinvoke-emulator with the official Azure SDK for Python and the Azure CLI.
# Usage: bash emulator/conformance/run.sh [pytest args]
# Env:   KUBEINVOKE_EMULATOR  emulator binary (default: <repo>/target/debug/kubeinvoke-emulator)
#        KUBEINVOKE_CACHE     cache dir for the virtualenvs (default: $HOME/.cache/kubeinvoke)
# Two virtualenvs: venv (pytest, the SDK packages, pexpect) runs the tests; venv-az holds the
# pinned azure-cli, whose exact pins of the same SDK packages differ from the SDK tests' pins.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${KUBEINVOKE_CACHE:-$HOME/.cache/kubeinvoke}"
bin="${KUBEINVOKE_EMULATOR:-$repo/target/debug/kubeinvoke-emulator}"

if [[ ! -x "$bin" ]]; then
  echo "run.sh: emulator binary not found at '$bin'." >&2
  echo "        Build it first: cargo build -p kubeinvoke-emulator (or set KUBEINVOKE_EMULATOR)." >&2
  exit 1
fi

# ensure_venv DIR REQUIREMENTS: create DIR when missing, (re)install REQUIREMENTS when they changed.
ensure_venv() {
  local venv="$1" reqs="$2"
  if [[ ! -x "$venv/bin/python" ]]; then
    mkdir -p "$cache"
    python3 -m venv "$venv"
  fi
  local stamp="$venv/.requirements.sha256" want
  want="$(sha256sum "$reqs" | cut -d' ' -f1)"
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$reqs"
    echo "$want" > "$stamp"
  fi
}

ensure_venv "$cache/venv" "$here/requirements.txt"
ensure_venv "$cache/venv-az" "$here/requirements-az.txt"

export KUBEINVOKE_EMULATOR="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
export KUBEINVOKE_AZ="$cache/venv-az/bin/az"
cd "$here"
export PYTHONDONTWRITEBYTECODE=1
exec "$cache/venv/bin/python" -m pytest -q -p no:cacheprovider "$@" .
