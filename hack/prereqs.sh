#!/usr/bin/env bash
# Everything the tests and the demo need that cargo does not bring: Debian packages (as root), real
# Helm (hack/install-helm.sh), the SBOM generator (hack/install-sbom-tool.sh), a current kubectl
# (hack/kubectl-current.sh) and the Kubernetes v1.20.2 binaries built once from Debian's source
# package (hack/build-kube.sh). Each step is quick when already done.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Debian package -> a file it installs (checked instead of dpkg's database: quicker, and exact).
declare -A pkgs=(
  [curl]=/usr/bin/curl [openssl]=/usr/bin/openssl [python3]=/usr/bin/python3
  [lua5.1]=/usr/bin/lua5.1
  # the node: container runtime, CNI loopback plugin, image building without a daemon
  [containerd]=/usr/bin/containerd [runc]=/usr/sbin/runc [containernetworking-plugins]=/usr/lib/cni/loopback
  [buildah]=/usr/bin/buildah [busybox-static]=/bin/busybox [util-linux]=/usr/bin/nsenter [procps]=/usr/bin/pgrep
)
missing=()
for p in "${!pkgs[@]}"; do [ -e "${pkgs[$p]}" ] || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "prereqs: missing Debian packages ${missing[*]}; install them (needs root)" >&2; exit 1; }
  echo "prereqs: apt-get install ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
python3 -c 'import venv, ensurepip' 2>/dev/null || {
  [ "$(id -u)" = 0 ] || { echo "prereqs: python3 has no venv module; install python3-venv" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
}
"$HERE/install-helm.sh"
# promtool for `make alerts-test` (unpacked from Debian's prometheus package, not installed).
"$HERE/install-promtool.sh"
"$HERE/install-sbom-tool.sh"
# A current kubectl (unpacked, not installed) for the plugin tests (tests/cli_kubectl.rs).
"$HERE/kubectl-current.sh"
exec "$HERE/build-kube.sh"
