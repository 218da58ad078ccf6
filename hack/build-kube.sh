#!/usr/bin/env bash
# Builds the Kubernetes v1.20.2 binaries a one-node cluster needs (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kubectl) from Debian's `kubernetes` source package, once, and caches them
# under ~/.cache/kubeinvoke/v1.20.2/. Installs what it needs with apt (run as root, as CI does).
# Why from source: no Debian package ships kube-apiserver, and nothing outside the package registries
# can be downloaded here. Recipe and pitfalls: shared/reference/real-apiserver.md.
set -euo pipefail

VERSION=v1.20.2
DEB_VERSION=1.20.5+really1.20.2-1.1+deb12u1
CACHE="${KUBEINVOKE_CACHE:-$HOME/.cache/kubeinvoke}"
OUT="$CACHE/$VERSION"

say() { printf '[build-kube %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)
cached=1
for b in "${BINARIES[@]}"; do [ -x "$OUT/$b" ] || cached=0; done
if [ "$cached" = 1 ] && command -v etcd >/dev/null; then
  say "cached: $OUT (${BINARIES[*]} $VERSION); etcd $(command -v etcd)"
  exit 0
fi

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "build-kube: installing Debian packages needs root (apt-get); run as root or install: $*" >&2
    exit 1
  fi
}

pkgs=(golang-go etcd-server rsync jq openssl golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev dpkg-dev)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
src_list=/etc/apt/sources.list.d/debian-src.sources
if [ ${#missing[@]} -gt 0 ] || [ ! -f "$src_list" ]; then
  need_root "${missing[*]}"
  if [ ! -f "$src_list" ]; then
    say "adding a deb-src entry derived from the image's own apt sources"
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > "$src_list"
  fi
  say "apt-get update"
  apt-get update -qq
  if [ ${#missing[@]} -gt 0 ]; then
    say "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

mkdir -p "$OUT"
work=$(mktemp -d "${TMPDIR:-/tmp}/kubeinvoke-kube-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
say "fetching the Debian source package kubernetes=$DEB_VERSION"
apt-get source --download-only "kubernetes=$DEB_VERSION" >/dev/null 2>&1 || {
  echo "build-kube: 'apt-get source kubernetes=$DEB_VERSION' failed; is a deb-src entry present ($src_list)?" >&2
  exit 1
}
tarball=$(ls kubernetes_*.orig.tar.gz | head -n1)
say "unpacking $tarball"
mkdir src && tar -xzf "$tarball" -C src --strip-components=1
cd src

# Go 1.19 crashes the vendored reflect2 1.0.1 at the first write; use Debian's fixed copies.
say "replacing vendored reflect2/json-iterator with Debian's (Go 1.19 compatibility)"
rm -rf vendor/github.com/modern-go/reflect2 vendor/github.com/json-iterator/go
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 vendor/github.com/modern-go/reflect2
cp -r /usr/share/gocode/src/github.com/json-iterator/go vendor/github.com/json-iterator/go
find vendor/github.com/json-iterator/go -name '*_test.go' -delete

mkdir -p .go/src/k8s.io && ln -s ../../.. .go/src/k8s.io/kubernetes
say "go build of ${BINARIES[*]} (about 8-10 minutes on 2 cores the first time)"
start=$(date +%s)
(
  export GOPATH="$PWD/.go" GOCACHE="$CACHE/go-build" CGO_ENABLED=0 GOFLAGS=-mod=vendor
  cd .go/src/k8s.io/kubernetes
  make WHAT="${BINARIES[*]/#/cmd/}" KUBE_GIT_VERSION="$VERSION" KUBE_GIT_TREE_STATE=clean \
    > "$work/build.log" 2>&1
) &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  sleep 30 &
  wait $! || true
  kill -0 "$pid" 2>/dev/null && say "still building... $(( $(date +%s) - start ))s"
done
if ! wait "$pid"; then
  tail -n 40 "$work/build.log" >&2
  echo "build-kube: the kube-apiserver build failed (log above)" >&2
  exit 1
fi
for b in "${BINARIES[@]}"; do cp "_output/local/bin/linux/amd64/$b" "$OUT/"; done
rm -rf "$CACHE/go-build"
say "built in $(( $(date +%s) - start ))s: ${BINARIES[*]} in $OUT"
