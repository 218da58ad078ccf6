#!/usr/bin/env bash
# `make demo`: the whole product on this machine, installed as a user would. A local one-node cluster
# (v1.20.2: etcd, API server, controller-manager, scheduler, containerd, kubelet), the emulator standing
# in for Azure (its "private AKS cluster" runs each command in a pod of namespace aks-command, as AKS
# does), the operator image (make image) installed with Helm into kubeinvoke-system (two replicas,
# leader election), and every manifest of examples/. Everything keeps running for you to explore;
# `make cluster-down` stops all of it.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$HERE/.."
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
target=${CARGO_TARGET_DIR:-target}/debug

step "local one-node cluster (Kubernetes v1.20.2 on loopback: control plane, containerd, kubelet)"
env_file=$("$HERE/cluster.sh" up)
# shellcheck disable=SC1090
source "$env_file"
dir=$KUBEINVOKE_CLUSTER_DIR
k() { "$KUBEINVOKE_KUBECTL" "$@"; }
"$HERE/images.sh" import "$KUBEINVOKE_CONTAINERD_SOCKET" operator runner

step "kubeinvoke-emulator (ARM + Entra ID over TLS on loopback)"
ca_b64=$(base64 -w0 "$KUBEINVOKE_CA_FILE")
kubeconfig="{server: \"$KUBEINVOKE_APISERVER\", certificateAuthorityData: \"$ca_b64\", userToken: \"$KUBEINVOKE_USER_TOKEN\", adminToken: \"$KUBEINVOKE_USER_TOKEN\", userExec: true}"
command_pod="{startTimeoutSeconds: 60}"
cat > "$dir/world.yaml" <<WORLD
tenants: [{id: 00000000-0000-0000-0000-000000000001}]
principals:
  - {tenantId: 00000000-0000-0000-0000-000000000001, clientId: 11111111-1111-1111-1111-111111111111, clientSecret: emulator-secret}
subscriptions:
  - id: 00000000-0000-0000-0000-000000000000
    resourceGroups:
      - name: rg1
        managedClusters:
          - {name: aks1, privateCluster: true, commandPod: $command_pod, kubeconfig: $kubeconfig}
          - {name: aks-aad, aadManaged: true, commandPod: $command_pod, kubeconfig: $kubeconfig}
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

step "the operator: helm install kubeinvoke charts/kubeinvoke -n kubeinvoke-system"
k create namespace kubeinvoke-system --dry-run=client -o yaml | k apply -f - >/dev/null
# The recommended install lists the tenant namespaces: the operator's rights are a Role there only.
k create namespace demo --dry-run=client -o yaml | k apply -f - >/dev/null
k create configmap emulator-ca -n kubeinvoke-system --from-file=ca.crt="$ca" --dry-run=client -o yaml | k apply -f - >/dev/null
# What this cluster needs beyond the chart's defaults: the image imported into the node, the host
# network (pods reach the API server and the emulator on 127.0.0.1; there is no kube-proxy) and the
# emulator as a custom cloud.
cat > "$dir/values.yaml" <<VALUES
image: {repository: localhost/kubeinvoke/kubeinvoke, tag: dev, pullPolicy: Never}
hostNetwork: true
extraEnv:
  - {name: KUBERNETES_SERVICE_HOST, value: "127.0.0.1"}
  - {name: KUBERNETES_SERVICE_PORT, value: "$KUBEINVOKE_APISERVER_PORT"}
armEndpoint: "$arm"
authorityHost: "$arm"
aciExecHosts: [localhost]
caFile: {configMap: emulator-ca, key: ca.crt}
logFormat: text
watchNamespaces: [demo]
VALUES
"$KUBEINVOKE_HELM" upgrade --install kubeinvoke charts/kubeinvoke -n kubeinvoke-system -f "$dir/values.yaml" \
  --wait --timeout 3m >/dev/null
k get pods -n kubeinvoke-system -o wide
echo "operator logs: $KUBEINVOKE_KUBECTL logs -n kubeinvoke-system deploy/kubeinvoke"

step "examples/ into namespace demo"
k apply -n demo -f examples/

step "waiting for the commands to finish"
for rc in list-system-pods apply-manifests app-disk-usage app-env; do
  k wait -n demo --for=condition=Ready --timeout=120s "rcmd/$rc" >/dev/null 2>&1 || true
done
k get rcmd,kcx -n demo -o wide

step "list-system-pods ran kubectl in a command pod of the 'private cluster'; its status and output:"
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

step "kubectl invoke: what a pipeline runs (kubectl finds the kubectl-invoke plugin on PATH)"
aks1=/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/aks1
echo "\$ kubectl invoke aks \$AKS1 -n demo --command 'kubectl get nodes -o name; exit 3'"
set +e
PATH="$PWD/$target:$PATH" "$KUBEINVOKE_KUBECTL" invoke aks "$aks1" -n demo --timeout 2m \
  --command 'kubectl get nodes -o name; exit 3'
code=$?
set -e
echo "kubectl invoke exited with $code: the remote command's exit code"

cat <<MSG

Everything is still running. Explore it with:
  source $env_file
  \$KUBEINVOKE_KUBECTL get kubeinvoke -n demo
  \$KUBEINVOKE_KUBECTL describe rcmd -n demo app-disk-usage
  PATH=$PWD/$target:\$PATH \$KUBEINVOKE_KUBECTL invoke ls -n demo
Stop it all with: make cluster-down
MSG
