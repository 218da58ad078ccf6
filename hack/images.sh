#!/usr/bin/env bash
# The container images of the local node, built without a registry or a Docker engine (buildah with
# the vfs driver and chroot isolation, no daemon) and kept as OCI archives in
# ~/.cache/kubeinvoke/images/, then imported into a node's containerd.
#
#   hack/images.sh build pause|runner|operator [PROFILE]   build one (operator: from target/PROFILE, default release)
#   hack/images.sh import SOCKET NAME...                   import built images into containerd (namespace k8s.io)
#   hack/images.sh archive NAME REF FILE                   write a built image as an OCI archive, tagged REF
#   hack/images.sh import-file SOCKET FILE REF             import an OCI archive (a release's) that holds REF
#   hack/images.sh ref NAME                                print the image reference of NAME
#
# Images:
#   pause     localhost/kubeinvoke/pause:1           every pod's sandbox (hack/images/pause.c, static)
#   operator  localhost/kubeinvoke/kubeinvoke:dev    the Dockerfile's runtime stage on a base assembled here
#             from Debian's glibc, libgcc and CA certificates with a nonroot (65532) user: the layout of
#             distroless/cc-debian12:nonroot, which the Dockerfile uses when built with Docker
#   runner    localhost/kubeinvoke/aks-runner:1      the emulator's AKS command pod: sh, kubectl, helm
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
CACHE="${KUBEINVOKE_CACHE:-$HOME/.cache/kubeinvoke}"
OUT="$CACHE/images"
STORE="$CACHE/buildah"
VERSION=v1.20.2

say() { printf '[images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'images: %s\n' "$*" >&2; exit 1; }
bah() { buildah --root "$STORE/root" --runroot "$STORE/runroot" --storage-driver vfs "$@"; }

ref() {
  case "$1" in
    pause) echo localhost/kubeinvoke/pause:1 ;;
    operator) echo localhost/kubeinvoke/kubeinvoke:dev ;;
    runner) echo localhost/kubeinvoke/aks-runner:1 ;;
    *) die "unknown image $1 (pause, operator, runner)" ;;
  esac
}

# commit_archive CONTAINER NAME: commit a working container as NAME's reference and write its archive.
commit_archive() {
  local ctr=$1 name=$2 image
  image=$(ref "$name")
  bah commit -q --rm "$ctr" "$image" >/dev/null
  mkdir -p "$OUT"
  rm -f "$OUT/$name.tar"
  bah push -q "$image" "oci-archive:$OUT/$name.tar:$image" >/dev/null
  say "built $image -> $OUT/$name.tar"
}

# A content key: an image is rebuilt only when what goes into it changed.
stamp_ok() { [ -f "$OUT/$1.tar" ] && [ "$(cat "$OUT/$1.stamp" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" > "$OUT/$1.stamp"; }

build_pause() {
  local key
  key=$(sha256sum "$HERE/images/pause.c" | cut -d' ' -f1)
  stamp_ok pause "$key" && return 0
  local work ctr
  work=$(mktemp -d); trap 'rm -rf "$work"' RETURN
  gcc -Os -static -o "$work/pause" "$HERE/images/pause.c"
  ctr=$(bah from scratch)
  bah copy -q "$ctr" "$work/pause" /pause >/dev/null
  bah config --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
  commit_archive "$ctr" pause
  stamp pause "$key"
}

# The runtime base: what distroless/cc-debian12:nonroot holds, from this Debian's own packages.
build_base() {
  local base=localhost/kubeinvoke/base-cc:debian12 key
  key=$(dpkg-query -W -f '${Package}=${Version} ' libc6 libgcc-s1 ca-certificates)
  if bah inspect "$base" >/dev/null 2>&1 && [ "$(cat "$STORE/base.stamp" 2>/dev/null)" = "$key" ]; then
    return 0
  fi
  local work ctr lib
  work=$(mktemp -d); trap 'rm -rf "$work"' RETURN
  local rootfs=$work/rootfs
  mkdir -p "$rootfs"/{etc/ssl/certs,tmp,home/nonroot,lib/x86_64-linux-gnu,lib64}
  chmod 1777 "$rootfs/tmp"
  chown 65532:65532 "$rootfs/home/nonroot"; chmod 700 "$rootfs/home/nonroot"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$rootfs/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' > "$rootfs/etc/group"
  printf 'hosts: files dns\n' > "$rootfs/etc/nsswitch.conf"
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
  # Shared objects of libc6 and libgcc-s1 in the multiarch directory, and the dynamic loader.
  for lib in $(dpkg -L libc6 libgcc-s1 | grep -E '^/(usr/)?lib/x86_64-linux-gnu/[^/]+\.so(\.[0-9]+)*$'); do
    cp -a "$lib" "$rootfs/lib/x86_64-linux-gnu/"
  done
  cp -aL /lib64/ld-linux-x86-64.so.2 "$rootfs/lib64/"
  ctr=$(bah from scratch)
  bah copy -q "$ctr" "$rootfs" / >/dev/null
  bah config --user 65532:65532 --workingdir /home/nonroot --env PATH=/usr/local/bin:/usr/bin:/bin \
    --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt "$ctr"
  bah commit -q --rm "$ctr" "$base" >/dev/null
  echo "$key" > "$STORE/base.stamp"
  say "built $base (glibc, libgcc, CA certificates, user nonroot 65532)"
}

build_operator() {
  local profile=${1:-release} bin
  bin="${CARGO_TARGET_DIR:-$ROOT/target}/$profile/kubeinvoke"
  [ -x "$bin" ] || die "$bin is missing: build it first (cargo build --bin kubeinvoke${profile/#/ --profile })"
  [ -x "${bin%/kubeinvoke}/kubectl-invoke" ] \
    || die "${bin%/kubeinvoke}/kubectl-invoke is missing: build it first (cargo build --bin kubectl-invoke)"
  build_base
  local work
  work=$(mktemp -d); trap 'rm -rf "$work"' RETURN
  cp "$bin" "${bin%/kubeinvoke}/kubectl-invoke" "$work/"
  # Every library the binary needs must be in the base: libc6's or libgcc-s1's.
  local so missing=""
  for so in $(ldd "$bin" "${bin%/kubeinvoke}/kubectl-invoke" | awk '$2 == "=>" {print $3} $1 ~ /^\// && $1 !~ /:$/ {print $1}'); do
    { dpkg -S "$so" 2>/dev/null || dpkg -S "$(readlink -f "$so")" 2>/dev/null; } | grep -Eq '^(libc6|libgcc-s1)(:amd64)?:' || missing+=" $so"
  done
  [ -z "$missing" ] || die "the binary needs libraries the base does not ship:$missing"
  bah bud -q --isolation chroot --network host --layers=false \
    --build-arg RUNTIME_BASE=localhost/kubeinvoke/base-cc:debian12 --build-arg BINARY=prebuilt \
    --target runtime -f "$ROOT/Dockerfile" -t "$(ref operator)" "$work" >/dev/null
  mkdir -p "$OUT"; rm -f "$OUT/operator.tar"
  bah push -q "$(ref operator)" "oci-archive:$OUT/operator.tar:$(ref operator)" >/dev/null
  say "built $(ref operator) from $bin -> $OUT/operator.tar"
}

# The emulator's AKS command pod, like AKS's own: a shell, kubectl and helm.
build_runner() {
  local kubectl="$CACHE/$VERSION/kubectl" helm key
  helm=$("$HERE/install-helm.sh" --print-path)
  [ -x "$kubectl" ] || die "$kubectl is missing (make prereqs builds it)"
  key=$(cat /bin/busybox "$kubectl" "$helm" | sha256sum | cut -d' ' -f1)
  stamp_ok runner "$key" && return 0
  local ctr mnt
  ctr=$(bah from scratch)
  mnt=$(bah mount "$ctr")
  mkdir -p "$mnt"/{bin,usr/local/bin,tmp,command,etc}
  chmod 1777 "$mnt/tmp"
  cp /bin/busybox "$mnt/bin/busybox"
  chroot "$mnt" /bin/busybox --install -s /bin
  cp "$kubectl" "$helm" "$mnt/usr/local/bin/"
  printf 'root:x:0:0:root:/root:/bin/sh\n' > "$mnt/etc/passwd"
  bah umount "$ctr" >/dev/null
  bah config --workingdir /command --env PATH=/usr/local/bin:/bin --cmd '["/bin/sh"]' "$ctr"
  commit_archive "$ctr" runner
  stamp runner "$key"
}

import() {
  local sock=$1; shift
  local name
  for name in "$@"; do
    [ -f "$OUT/$name.tar" ] || "$0" build "$name"
    ctr --address "$sock" -n k8s.io images import "$OUT/$name.tar" >/dev/null \
      || die "ctr could not import $OUT/$name.tar"
    local present
    present=$(ctr --address "$sock" -n k8s.io images ls -q)
    grep -qx "$(ref "$name")" <<<"$present" \
      || die "$(ref "$name") is not in containerd after importing $OUT/$name.tar"
  done
}

# archive NAME REF FILE: the built image NAME, tagged REF too, as an OCI archive at FILE (a release's).
archive() {
  local name=$1 image=$2 file=$3
  bah tag "$(ref "$name")" "$image"
  rm -f "$file"
  bah push -q "$image" "oci-archive:$file:$image" >/dev/null
  say "wrote $image -> $file"
}

# import_file SOCKET FILE REF: import an archive and check that containerd now holds REF.
import_file() {
  local sock=$1 file=$2 image=$3
  [ -f "$file" ] || die "$file is missing (hack/release.sh writes it)"
  ctr --address "$sock" -n k8s.io images import "$file" >/dev/null || die "ctr could not import $file"
  ctr --address "$sock" -n k8s.io images ls -q | grep -qx "$image" \
    || die "$image is not in containerd after importing $file"
}

mkdir -p "$OUT" "$STORE"
case "${1:-}" in
  build)
    case "${2:-}" in
      pause) build_pause ;;
      runner) build_runner ;;
      operator) build_operator "${3:-release}" ;;
      *) die "usage: hack/images.sh build pause|runner|operator [PROFILE]" ;;
    esac ;;
  import) [ $# -ge 3 ] || die "usage: hack/images.sh import SOCKET NAME..."; shift; import "$@" ;;
  archive) [ $# -eq 4 ] || die "usage: hack/images.sh archive NAME REF FILE"; archive "$2" "$3" "$4" ;;
  import-file) [ $# -eq 4 ] || die "usage: hack/images.sh import-file SOCKET FILE REF"; import_file "$2" "$3" "$4" ;;
  ref) ref "${2:-}" ;;
  *) die "usage: hack/images.sh build NAME | import SOCKET NAME... | archive NAME REF FILE | import-file SOCKET FILE REF | ref NAME" ;;
esac
