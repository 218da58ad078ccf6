#!/usr/bin/env bash
# Builds into dist/ everything a release publishes, for the version in Cargo.toml:
#
#   kubeinvoke-image-<v>.oci.tar          the operator image (OCI archive) tagged as the chart's default
#                                         image, <repository>:<v> (load: skopeo copy, ctr images import)
#   kubeinvoke-<v>.tgz, index.yaml        the Helm chart (helm package) and a chart repository index
#   kubectl-invoke_v<v>_linux_amd64.tar.gz  the kubectl plugin (kubectl-invoke, its completion helper
#                                         kubectl_complete-invoke, LICENSE)
#   invoke.yaml                           the krew plugin manifest, with the archive's sha256
#   kubeinvoke-<v>.cdx.json               the SBOM (CycloneDX 1.5, by cargo-cyclonedx) of the crates
#   SHA256SUMS                            sha256 of every file above
#
#   hack/release.sh [--profile release|debug]
#   hack/release.sh --print-image       the image archive's path and the image reference it holds
#
# `make release` builds the release profile. The end-to-end tests (hack/e2e.sh) run the same packaging
# on the debug build and install what it wrote, as a user installs a release.
# RELEASE_URL: where the files are downloaded from (index.yaml, krew), default the repository's
# release page for the version's tag.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
CACHE="${KUBEINVOKE_CACHE:-$HOME/.cache/kubeinvoke}"
DIST="$ROOT/dist"
cd "$ROOT"

say() { printf '[release %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'release: %s\n' "$*" >&2; exit 1; }

profile=release print_image=false
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=${2:?--profile needs release or debug}; shift 2 ;;
    --print-image) print_image=true; shift ;;
    *) die "usage: hack/release.sh [--profile release|debug] | --print-image" ;;
  esac
done
case "$profile" in release|debug) ;; *) die "--profile is release or debug, not $profile" ;; esac

# One version everywhere: Cargo, the chart's version and appVersion, the image tag, the CHANGELOG.
version=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version = "\(.*\)"$/\1/p' Cargo.toml)
[ -n "$version" ] || die "no [workspace.package] version in Cargo.toml"
chart_field() { sed -n "s/^$1: *\"\{0,1\}\([^\"]*\)\"\{0,1\}$/\1/p" charts/kubeinvoke/Chart.yaml; }
[ "$(chart_field version)" = "$version" ] || die "Chart.yaml version $(chart_field version) is not Cargo's $version"
[ "$(chart_field appVersion)" = "$version" ] || die "Chart.yaml appVersion $(chart_field appVersion) is not Cargo's $version"
grep -q "^## \[$version\]" CHANGELOG.md || die "CHANGELOG.md has no '## [$version]' section"
repository=$(sed -n '/^image:/,/^[^ ]/ s/^  repository: *\([^ #]*\).*/\1/p' charts/kubeinvoke/values.yaml)
[ -n "$repository" ] || die "charts/kubeinvoke/values.yaml has no image.repository"
image="$repository:$version"
image_archive="$DIST/kubeinvoke-image-$version.oci.tar"
if $print_image; then echo "$image_archive $image"; exit 0; fi
url=${RELEASE_URL:-https://github.com/kubeinvoke/kubeinvoke/releases/download/v$version}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

say "kubeinvoke $version ($profile build) -> dist/"
if [ "$profile" = release ]; then
  # kubeinvoke_build_info's revision label (read at compile time). Only the release build: the tests'
  # debug build would otherwise be compiled twice, with and without it.
  KUBEINVOKE_GIT_REVISION=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
  export KUBEINVOKE_GIT_REVISION
  cargo build --locked --release --bin kubeinvoke --bin kubectl-invoke
else
  cargo build --locked --bin kubeinvoke --bin kubectl-invoke
fi
bin="${CARGO_TARGET_DIR:-$ROOT/target}/$profile"
rm -rf "$DIST"; mkdir -p "$DIST"

# The image: the Dockerfile's runtime stage around this build's binary, tagged as the chart expects.
"$HERE/images.sh" build operator "$profile"
"$HERE/images.sh" archive operator "$image" "$image_archive"

# The chart and its repository index.
helm=$("$HERE/install-helm.sh" --print-path)
"$helm" lint --strict charts/kubeinvoke >/dev/null || die "helm lint --strict charts/kubeinvoke failed"
"$helm" package charts/kubeinvoke --destination "$DIST" >/dev/null
[ -f "$DIST/kubeinvoke-$version.tgz" ] || die "helm package did not write kubeinvoke-$version.tgz"
"$helm" repo index "$DIST" --url "$url"

# The plugin: what krew unpacks, in a reproducible archive (sorted, fixed owner and time).
plugin="kubectl-invoke_v${version}_linux_amd64.tar.gz"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
install -m 0755 "$bin/kubectl-invoke" "$work/kubectl-invoke"
# kubectl (1.26+) completes a plugin's arguments by running kubectl_complete-<plugin> from PATH.
printf '#!/bin/sh\n# kubectl runs this to complete `kubectl invoke ...`\nexec kubectl-invoke __complete "$@"\n' \
  > "$work/kubectl_complete-invoke"
chmod 0755 "$work/kubectl_complete-invoke"
install -m 0644 LICENSE "$work/LICENSE"
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner -C "$work" \
  -cf - kubectl-invoke kubectl_complete-invoke LICENSE | gzip -n > "$DIST/$plugin"
sha=$(sha256sum "$DIST/$plugin" | cut -d' ' -f1)
sed -e "s|@VERSION@|$version|g" -e "s|@URI@|$url/$plugin|g" -e "s|@SHA256@|$sha|g" \
  "$HERE/release/krew-invoke.yaml" > "$DIST/invoke.yaml"

# The SBOM of the kubeinvoke package (both binaries): every crate Cargo.lock resolves for it on this
# target. cargo-cyclonedx writes one per workspace member; the emulator's and the bench's are not
# released.
sbom_tool=$("$HERE/install-sbom-tool.sh" --print-path)
"$sbom_tool" cyclonedx --format json --spec-version 1.5 --target x86_64-unknown-linux-gnu \
  --override-filename "kubeinvoke-$version.cdx" --quiet --manifest-path Cargo.toml
mv "kubeinvoke-$version.cdx.json" "$DIST/"
rm -f emulator/kubeinvoke-"$version".cdx.json bench/kubeinvoke-"$version".cdx.json

(cd "$DIST" && find . -maxdepth 1 -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort \
  | xargs sha256sum > SHA256SUMS && sha256sum --check --quiet SHA256SUMS)
say "dist/ for $version ($profile):"
(cd "$DIST" && ls -l --time-style=+ | tail -n +2 | awk '{printf "  %10s  %s\n", $5, $NF}') >&2
