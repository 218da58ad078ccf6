#!/usr/bin/env bash
# `make demo`: the local control plane, the CRDs and every manifest of examples/, then what kubectl
# shows. The control plane keeps running for you to explore; `make cluster-down` stops it.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$HERE/.."
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "local control plane (kube-apiserver v1.20.2 + etcd on loopback)"
env_file=$("$HERE/cluster.sh" up)
# shellcheck disable=SC1090
source "$env_file"
k() { "$KUBEINVOKE_KUBECTL" "$@"; }

step "CRDs"
k apply -f crds/
k wait --for condition=established --timeout=60s crd/remotecommands.kubeinvoke.io crd/kubeconfigexports.kubeinvoke.io

step "examples/ into namespace demo"
k create namespace demo --dry-run=client -o yaml | k apply -f -
k apply -n demo -f examples/

step "kubectl get rcmd,kcx -n demo"
k get rcmd,kcx -n demo

cat <<MSG

The control plane is still running. Explore it with:
  source $env_file
  \$KUBEINVOKE_KUBECTL get kubeinvoke -n demo
  \$KUBEINVOKE_KUBECTL explain remotecommand.spec
Stop it with: make cluster-down
MSG
