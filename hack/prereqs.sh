#!/usr/bin/env bash
# Everything the tests and the demo need that cargo does not bring: Debian packages (as root) and
# kube-apiserver + kubectl v1.20.2 built once from Debian's source package (cached).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

missing=()
for tool in curl openssl python3 lua5.1; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "prereqs: missing ${missing[*]}; install them (needs root)" >&2; exit 1; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl openssl python3 python3-venv lua5.1 >/dev/null
fi
python3 -c 'import venv' 2>/dev/null || {
  [ "$(id -u)" = 0 ] || { echo "prereqs: python3 has no venv module; install python3-venv" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
}
exec "$HERE/build-kube.sh"
