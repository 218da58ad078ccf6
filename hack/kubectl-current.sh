#!/usr/bin/env bash
# A current kubectl (Debian unstable's), unpacked once into ~/.cache/kubeinvoke/kubectl-<version>/
# for the tests that run `kubectl invoke` the way people do: kubectl finds the plugin on PATH.
#
# Nothing is installed and the machine's apt configuration is not touched: apt reads a sources list
# of its own (unstable only) into package lists of its own under the cache, `apt-get download`
# fetches the .deb (checked by apt against the archive's signed index), and `dpkg -x` unpacks it.
#
#   hack/kubectl-current.sh               fetch if no cached copy exists, print nothing but progress
#   hack/kubectl-current.sh --print-path  the same, then print the kubectl binary's path
#   hack/kubectl-current.sh --refresh     fetch unstable's newest version even when one is cached
set -euo pipefail

# Plugin completion (`kubectl_complete-<plugin>` on PATH) came with kubectl 1.26.
MIN_MINOR=26
CACHE="${KUBEINVOKE_CACHE:-$HOME/.cache/kubeinvoke}"
MIRROR="${KUBEINVOKE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

say() { printf '[kubectl-current %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'kubectl-current: %s\n' "$*" >&2; exit 1; }

print=false refresh=false work=
trap '[ -z "$work" ] || rm -rf "$work"' EXIT
for arg in "$@"; do
  case $arg in
    --print-path) print=true ;;
    --refresh) refresh=true ;;
    *) die "unknown argument $arg (--print-path, --refresh)" ;;
  esac
done

# The newest cached copy whose binary runs, if any.
cached() {
  local dirs dir
  mapfile -t dirs < <(printf '%s\n' "$CACHE"/kubectl-1.* | sort -V -r)
  for dir in "${dirs[@]}"; do
    if [ -x "$dir/usr/bin/kubectl" ] && "$dir/usr/bin/kubectl" version --client >/dev/null 2>&1; then
      echo "$dir/usr/bin/kubectl"
      return 0
    fi
  done
  return 1
}

fetch() {
  command -v apt-get >/dev/null || die "apt-get is missing (a Debian-based machine is needed to fetch kubectl)"
  [ -r "$KEYRING" ] || die "$KEYRING is missing (package debian-archive-keyring)"
  local apt_dir=$CACHE/apt-unstable
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
  echo "deb [signed-by=$KEYRING] $MIRROR unstable main" > "$apt_dir/sources.list"
  # Only these files: not the machine's sources, preferences or package lists.
  local opts=(
    -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
    -o APT::Sandbox::User=root
  )
  say "reading Debian unstable's package index"
  apt-get "${opts[@]}" -qq update >&2 || die "apt-get update of the unstable index failed"
  local version
  version=$(apt-cache "${opts[@]}" madison kubectl | awk -F'|' '$3 ~ /unstable/ {gsub(/ /, "", $2); print $2; exit}')
  [ -n "$version" ] || die "Debian unstable has no kubectl package"
  local upstream=${version%%+*}
  upstream=${upstream%%-*}
  upstream=${upstream#*:}
  local minor
  minor=$(echo "$upstream" | cut -d. -f2)
  [ "$minor" -ge "$MIN_MINOR" ] || die "unstable's kubectl $upstream predates plugin completion (1.$MIN_MINOR)"
  local out=$CACHE/kubectl-$upstream
  work=$(mktemp -d "${TMPDIR:-/tmp}/kubeinvoke-kubectl.XXXXXX")
  say "downloading kubectl $version"
  (cd "$work" && apt-get "${opts[@]}" -qq download "kubectl=$version" >&2) \
    || die "apt-get download kubectl=$version failed"
  mkdir -p "$work/root"
  dpkg -x "$work"/kubectl_*.deb "$work/root"
  "$work/root/usr/bin/kubectl" version --client >/dev/null 2>&1 \
    || die "the unpacked kubectl $upstream does not run on this machine"
  rm -rf "$out"
  mv "$work/root" "$out"
  say "unpacked kubectl $upstream at $out/usr/bin/kubectl"
}

if $refresh || ! cached >/dev/null; then
  fetch
fi
path=$(cached) || die "no usable kubectl in $CACHE after fetching"
if $print; then echo "$path"; fi
