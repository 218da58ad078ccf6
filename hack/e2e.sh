#!/usr/bin/env bash
# Runs the end-to-end tests (tests/*.rs) against a fresh local control plane that lives only as long
# as this script: started in a temp dir, stopped (exactly its own processes) on exit.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$HERE/.."

dir=$(mktemp -d "${TMPDIR:-/tmp}/kubeinvoke-e2e.XXXXXX")
trap '"$HERE/cluster.sh" down "$dir"' EXIT
"$HERE/cluster.sh" up "$dir" >/dev/null
export KUBEINVOKE_CLUSTER_DIR=$dir
echo "e2e: against $(curl -sf --cacert "$dir/pki/ca.crt" -H "Authorization: Bearer $(sed -n 's/^export KUBEINVOKE_ADMIN_TOKEN=//p' "$dir/cluster.env")" \
  "$(sed -n 's/^export KUBEINVOKE_APISERVER=//p' "$dir/cluster.env")/version" | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/kube-apiserver \1/p')"
cargo test --test '*' "$@"
