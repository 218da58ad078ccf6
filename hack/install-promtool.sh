#!/usr/bin/env bash
# Installs promtool, once, into ~/.cache/kubeinvoke/prometheus/promtool, for `make alerts-test`.
#
# It comes from Debian's `prometheus` package, downloaded and unpacked rather than installed:
# installing it would start a Prometheus service and pull in its dependencies, and promtool alone
# needs nothing but libc. Fails, saying what is missing, when the package cannot be had.
#
#   hack/install-promtool.sh               install if missing, print nothing but progress
#   hack/install-promtool.sh --print-path  install if missing, print the binary's path
set -euo pipefail

CACHE="${KUBEINVOKE_CACHE:-$HOME/.cache/kubeinvoke}"
OUT="$CACHE/prometheus"

say() { printf '[install-promtool %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ ! -x "$OUT/promtool" ] || ! "$OUT/promtool" --version >/dev/null 2>&1; then
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || {
    echo "install-promtool: needs apt-get and dpkg-deb (Debian) to fetch the prometheus package" >&2
    exit 1
  }
  work=$(mktemp -d "${TMPDIR:-/tmp}/kubeinvoke-promtool.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  download() { (cd "$work" && apt-get download prometheus) >"$work/apt.log" 2>&1; }
  if ! download; then
    if [ "$(id -u)" = 0 ]; then
      say "apt-get update (no prometheus package in the lists yet)"
      apt-get update -qq >&2
      download || { cat "$work/apt.log" >&2; echo "install-promtool: apt-get download prometheus failed" >&2; exit 1; }
    else
      cat "$work/apt.log" >&2
      echo "install-promtool: apt-get download prometheus failed; run 'apt-get update' as root (make prereqs does it in CI), or put promtool at $OUT/promtool" >&2
      exit 1
    fi
  fi
  deb=$(ls "$work"/prometheus_*.deb)
  say "unpacking promtool from $(basename "$deb")"
  dpkg-deb -x "$deb" "$work/root"
  mkdir -p "$OUT"
  install -m 0755 "$work/root/usr/bin/promtool" "$OUT/promtool"
  say "installed $("$OUT/promtool" --version 2>&1 | head -n 1) at $OUT/promtool"
fi
if [ "${1:-}" = --print-path ]; then echo "$OUT/promtool"; fi
