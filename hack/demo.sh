#!/usr/bin/env bash
# `make demo`: the whole product on this machine. A local control plane (kube-apiserver v1.20.2 +
# etcd), the emulator standing in for Azure (its "private AKS cluster" runs commands with kubectl
# against the local control plane), the operator, and every manifest of examples/. Everything keeps
# running for you to explore; `make cluster-down` stops all of it.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$HERE/.."
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
target=${CARGO_TARGET_DIR:-target}/debug

step "local control plane (kube-apiserver v1.20.2 + etcd on loopback)"
env_file=$("$HERE/cluster.sh" up)
# shellcheck disable=SC1090
source "$env_file"
dir=$KUBEINVOKE_CLUSTER_DIR
k() { "$KUBEINVOKE_KUBECTL" "$@"; }

step "kubeinvoke-emulator (ARM + Entra ID over TLS on loopback)"
ca_b64=$(base64 -w0 "$KUBEINVOKE_CA_FILE")
kubeconfig="{server: \"$KUBEINVOKE_APISERVER\", certificateAuthorityData: \"$ca_b64\", userToken: \"$KUBEINVOKE_USER_TOKEN\", adminToken: \"$KUBEINVOKE_USER_TOKEN\", userExec: true}"
command_env="{KUBECONFIG: \"$KUBECONFIG\", PATH: \"$(dirname "$KUBEINVOKE_KUBECTL"):/usr/local/bin:/usr/bin:/bin\"}"
cat > "$dir/world.yaml" <<WORLD
tenants: [{id: 00000000-0000-0000-0000-000000000001}]
principals:
  - {tenantId: 00000000-0000-0000-0000-000000000001, clientId: 11111111-1111-1111-1111-111111111111, clientSecret: emulator-secret}
subscriptions:
  - id: 00000000-0000-0000-0000-000000000000
    resourceGroups:
      - name: rg1
        managedClusters:
          - {name: aks1, privateCluster: true, commandDuration: 2, commandEnv: $command_env, kubeconfig: $kubeconfig}
          - {name: aks-aad, aadManaged: true, commandEnv: $command_env, kubeconfig: $kubeconfig}
        containerGroups:
          - {name: cg1, containers: [{name: app, logs: [ready]}]}
        connectedClusters:
          - {name: arc1, lroPolls: 2, kubeconfig: $kubeconfig}
WORLD
"$target/kubeinvoke-emulator" --listen 127.0.0.1:0 --state-dir "$dir/emulator" --world "$dir/world.yaml" \
  > "$dir/emulator.ready" 2> "$dir/emulator.log" < /dev/null &
echo $! > "$dir/emulator.pid"
for _ in $(seq 100); do [ -s "$dir/emulator.ready" ] && break; sleep 0.1; done
[ -s "$dir/emulator.ready" ] || { tail "$dir/emulator.log"; echo "demo: the emulator did not start" >&2; exit 1; }
arm=$(sed -n 's/.*"armEndpoint":"\([^"]*\)".*/\1/p' "$dir/emulator.ready")
ca=$(sed -n 's/.*"caFile":"\([^"]*\)".*/\1/p' "$dir/emulator.ready")
echo "ARM and Entra ID at $arm (CA $ca)"

step "CRDs and the operator (kubeinvoke controller)"
k apply -f crds/ >/dev/null
k wait --for condition=established --timeout=60s crd/remotecommands.kubeinvoke.io crd/kubeconfigexports.kubeinvoke.io >/dev/null
"$target/kubeinvoke" controller --arm-endpoint "$arm" --authority-host "$arm" --ca-file "$ca" --log-format text \
  > "$dir/operator.log" 2>&1 < /dev/null &
echo $! > "$dir/operator.pid"
echo "operator log: $dir/operator.log"

step "examples/ into namespace demo"
k create namespace demo --dry-run=client -o yaml | k apply -f - >/dev/null
k apply -n demo -f examples/

step "waiting for the commands to finish"
for rc in list-system-pods apply-manifests app-disk-usage app-env; do
  k wait -n demo --for=condition=Ready --timeout=60s "rcmd/$rc" >/dev/null 2>&1 || true
done
k get rcmd,kcx -n demo -o wide

step "list-system-pods ran kubectl on the 'private cluster'; its status and output:"
k get rcmd -n demo list-system-pods -o jsonpath='{"phase: "}{.status.phase}{"\nexitCode: "}{.status.exitCode}{"\nreason: "}{.status.reason}{"\nmessage: "}{.status.message}{"\n"}'
echo "--- output (Secret list-system-pods-output, key output) ---"
k get secret -n demo list-system-pods-output -o jsonpath='{.data.output}' | base64 -d

step "arc1-admin exported the AKS Arc cluster's kubeconfig (HybridContainerService, a long-running operation)"
k wait -n demo --for=condition=Ready --timeout=60s kcx/arc1-admin >/dev/null
k get kcx -n demo arc1-admin -o jsonpath='{"server: "}{.status.server}{"\ncredentialName: "}{.status.credentialName}{"\ncontentHash: "}{.status.contentHash}{"\n"}'
exported="$dir/arc1-admin.kubeconfig"
k get secret -n demo arc1-admin-kubeconfig -o jsonpath='{.data.kubeconfig}' | base64 -d > "$exported"
echo "--- kubectl --kubeconfig $exported get namespaces ---"
"$KUBEINVOKE_KUBECTL" --kubeconfig "$exported" get namespaces

cat <<MSG

Everything is still running. Explore it with:
  source $env_file
  \$KUBEINVOKE_KUBECTL get kubeinvoke -n demo
  \$KUBEINVOKE_KUBECTL describe rcmd -n demo app-disk-usage
Stop it all with: make cluster-down
MSG
