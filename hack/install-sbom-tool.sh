#!/usr/bin/env bash
# Installs cargo-cyclonedx (the CycloneDX project's SBOM generator for Cargo), pinned, once, into
# ~/.cache/kubeinvoke/tools/cargo-cyclonedx-<version>/ from crates.io with its own Cargo.lock.
#
#   hack/install-sbom-tool.sh               install if missing
#   hack/install-sbom-tool.sh --print-path  install if missing, print the binary's path
set -euo pipefail
VERSION=0.5.9
CACHE="${KUBEINVOKE_CACHE:-$HOME/.cache/kubeinvoke}"
ROOT="$CACHE/tools/cargo-cyclonedx-$VERSION"
BIN="$ROOT/bin/cargo-cyclonedx"
if [ ! -x "$BIN" ]; then
  printf '[install-sbom-tool %s] cargo install cargo-cyclonedx %s\n' "$(date +%H:%M:%S)" "$VERSION" >&2
  cargo install --quiet --locked --version "$VERSION" --root "$ROOT" cargo-cyclonedx >&2
fi
if [ "${1:-}" = --print-path ]; then echo "$BIN"; fi
