#!/usr/bin/env bash
# Runs the end-to-end tests (tests/*.rs, or the cargo test arguments given) against a fresh local
# one-node cluster that lives only as long as this script: started in a temp dir, stopped (exactly its
# own processes) on exit. First the release's files are made from the debug build (hack/release.sh
# --profile debug -> dist/); its operator image and the command-pod image are imported into the node.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$HERE/.."

# What a release publishes, from this tree's debug build: the tests install its chart package, load
# its image archive and run its plugin (dist/).
"$HERE/release.sh" --profile debug
read -r image_archive image < <("$HERE/release.sh" --print-image)
dir=$(mktemp -d "${TMPDIR:-/tmp}/kubeinvoke-e2e.XXXXXX")
trap '"$HERE/cluster.sh" down "$dir"' EXIT
"$HERE/cluster.sh" up "$dir" >/dev/null
"$HERE/images.sh" import-file "$dir/containerd/containerd.sock" "$image_archive" "$image"
"$HERE/images.sh" import "$dir/containerd/containerd.sock" runner
export KUBEINVOKE_CLUSTER_DIR=$dir
echo "e2e: against $(curl -sf --cacert "$dir/pki/ca.crt" -H "Authorization: Bearer $(sed -n 's/^export KUBEINVOKE_ADMIN_TOKEN=//p' "$dir/cluster.env")" \
  "$(sed -n 's/^export KUBEINVOKE_APISERVER=//p' "$dir/cluster.env")/version" | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/kube-apiserver \1/p')"
# Every tests/*.rs by default; or what the caller names (e.g. `--test remote_command`).
if [ $# -eq 0 ]; then set -- --test '*'; fi
cargo test --no-fail-fast "$@"
