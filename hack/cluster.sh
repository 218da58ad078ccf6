#!/usr/bin/env bash
# The local Kubernetes cluster: one real node. etcd, kube-apiserver, kube-controller-manager and
# kube-scheduler v1.20.2 on free loopback ports, containerd + runc and a kubelet in a private mount
# namespace; all state in one directory, TLS everywhere, the Node and RBAC authorizers.
#
#   hack/cluster.sh up [DIR]     start (builds/caches kube-apiserver first); prints the env file path
#   hack/cluster.sh down [DIR]   stop exactly the processes `up` started in DIR and remove DIR
#   hack/cluster.sh status [DIR]
#
# DIR defaults to $KUBEINVOKE_CLUSTER_DIR or /tmp/kubeinvoke-cluster. `up` writes DIR/cluster.env
# (KUBECONFIG, KUBEINVOKE_APISERVER, KUBEINVOKE_ADMIN_TOKEN, KUBEINVOKE_USER_TOKEN, KUBEINVOKE_CA_FILE,
# KUBEINVOKE_KUBECTL, KUBEINVOKE_HELM, ...) and DIR/kubeconfig; DIR/*.pid name every process it started.
# Pods use the host network (127.0.0.1) and images imported into the node's containerd
# (imagePullPolicy: Never): hack/images.sh builds them.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VERSION=v1.20.2
CACHE="${KUBEINVOKE_CACHE:-$HOME/.cache/kubeinvoke}"
BIN="$CACHE/$VERSION"
cmd=${1:-}
DIR=${2:-${KUBEINVOKE_CLUSTER_DIR:-/tmp/kubeinvoke-cluster}}
# The node's name is also the host name the API server dials to reach the kubelet: `localhost`
# resolves to loopback on every machine.
NODE_NAME=localhost
SERVICE_IP=127.0.100.1
helm_path() { "$HERE/install-helm.sh" --print-path; }

say() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'cluster: %s\n' "$*" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Waits until the command succeeds, or fails after $1 seconds with $2 as the message.
wait_for() {
  local deadline=$(( $(date +%s) + $1 )) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

stop_pid() {
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait_for 20 "process $pid to exit" bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# --- certificates ------------------------------------------------------------------------------
# sign NAME CN [O] [SAN]: a key and a certificate signed by the cluster CA, in $pki.
sign() {
  local name=$1 cn=$2 org=${3:-} san=${4:-} subj="/CN=$2"
  [ -n "$org" ] && subj="/O=$org/CN=$cn"
  openssl req -newkey rsa:2048 -nodes -subj "$subj" -keyout "$pki/$name.key" -out "$pki/$name.csr" 2>/dev/null
  if [ -n "$san" ]; then printf 'subjectAltName=%s\n' "$san" > "$pki/$name.ext"; else : > "$pki/$name.ext"; fi
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 30 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$pki/$name.ext"
}

# component_kubeconfig NAME: a kubeconfig that authenticates with the client certificate NAME.
component_kubeconfig() {
  cat > "$DIR/$1.kubeconfig" <<KCFG
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "$server", certificate-authority: "$pki/ca.crt"}
users:
- name: $1
  user: {client-certificate: "$pki/$1.crt", client-key: "$pki/$1.key"}
contexts:
- name: local
  context: {cluster: local, user: $1}
current-context: local
KCFG
}

# --- the node's private mount namespace ----------------------------------------------------------
# containerd and kubelet write fixed host paths (/run, /var/lib, /var/log, /etc) and rewrite kernel
# settings. They run in a mount namespace of their own where those directories are overlays kept in
# $DIR/ns and those /proc/sys files are private copies: the machine stays as it was.
in_node() { nsenter -t "$(cat "$DIR/ns.pid")" -m -- "$@"; }

start_node_namespace() {
  setsid unshare --mount --propagation private sleep infinity < /dev/null > /dev/null 2>&1 &
  echo $! > "$DIR/ns.pid"
  own_mount_ns() { [ "$(readlink "/proc/$(cat "$DIR/ns.pid")/ns/mnt")" != "$(readlink /proc/$$/ns/mnt)" ]; }
  wait_for 10 "mount namespace" own_mount_ns || die "could not create a private mount namespace (unshare --mount)"
  local ns=$DIR/ns
  in_node bash -euc '
    ns=$1
    for d in run var/lib var/log etc opt; do
      mkdir -p "$ns/upper/$d" "$ns/work/$d"
      mount -t overlay overlay -o "lowerdir=/$d,upperdir=$ns/upper/$d,workdir=$ns/work/$d" "/$d"
    done
    for f in vm/overcommit_memory kernel/panic kernel/panic_on_oops net/ipv4/ip_forward; do
      copy="$ns/sysctl-${f//\//-}"
      cat "/proc/sys/$f" > "$copy"
      mount --bind "$copy" "/proc/sys/$f"
    done' _ "$ns" || die "could not prepare the node's mount namespace (overlayfs and bind mounts)"
}

# --- containerd ----------------------------------------------------------------------------------
start_containerd() {
  local c=$DIR/containerd
  mkdir -p "$c" "$DIR/cni/net.d"
  # Loopback only: the pods that run here (the operator, the emulator's command pods) use the host
  # network, all on 127.0.0.1.
  cat > "$DIR/cni/net.d/10-loopback.conflist" <<CNI
{"cniVersion": "0.4.0", "name": "loopback", "plugins": [{"type": "loopback"}]}
CNI
  containerd config default | python3 -c '
import sys
c, d = sys.argv[1], sys.argv[2]
text = sys.stdin.read()
edits = {
    "root = \"/var/lib/containerd\"": f"root = \"{c}/root\"",
    "state = \"/run/containerd\"": f"state = \"{c}/state\"",
    "address = \"/run/containerd/containerd.sock\"": f"address = \"{c}/containerd.sock\"",
    "sandbox_image = \"registry.k8s.io/pause:3.6\"": "sandbox_image = \"localhost/kubeinvoke/pause:1\"",
    "bin_dir = \"/opt/cni/bin\"": "bin_dir = \"/usr/lib/cni\"",
    "conf_dir = \"/etc/cni/net.d\"": f"conf_dir = \"{d}/cni/net.d\"",
    "path = \"/opt/containerd\"": f"path = \"{c}/opt\"",
    "netns_mounts_under_state_dir = false": "netns_mounts_under_state_dir = true",
    # These machines lack CAP_SYS_RESOURCE: runc cannot lower oom_score_adj below the parent`s,
    # and every sandbox fails without this.
    "restrict_oom_score_adj = false": "restrict_oom_score_adj = true",
}
for old, new in edits.items():
    if old not in text:
        sys.exit(f"containerd config default has no {old!r}")
    text = text.replace(old, new, 1)
print(text)
' "$c" "$DIR" > "$c/config.toml" || die "could not write the containerd configuration"
  say "containerd $(containerd --version | awk '{print $3}') (socket $c/containerd.sock)"
  setsid nsenter -t "$(cat "$DIR/ns.pid")" -m -- containerd --config "$c/config.toml" \
    > "$DIR/containerd.log" 2>&1 < /dev/null &
  echo $! > "$DIR/containerd.pid"
  wait_for 30 containerd ctr --address "$c/containerd.sock" version \
    || { tail -20 "$DIR/containerd.log" >&2; die "containerd did not start in 30s (log above)"; }
  "$HERE/images.sh" import "$c/containerd.sock" pause
}

# --- kubelet -------------------------------------------------------------------------------------
start_kubelet() {
  local kport hport
  kport=$(free_port); hport=$(free_port)
  mkdir -p "$DIR/kubelet"
  cat > "$DIR/kubelet/config.yaml" <<CFG
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $kport
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $hport
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$pki/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$pki/kubelet-serving.crt"
tlsPrivateKeyFile: "$pki/kubelet-serving.key"
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
makeIPTablesUtilChains: false
# Images are imported, never pulled: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {}
nodeStatusUpdateFrequency: 2s
staticPodPath: ""
CFG
  say "kubelet $VERSION as node $NODE_NAME (127.0.0.1:$kport)"
  AWS_EC2_METADATA_DISABLED=true setsid nsenter -t "$(cat "$DIR/ns.pid")" -m -- "$BIN/kubelet" \
    --config="$DIR/kubelet/config.yaml" --kubeconfig="$DIR/kubelet.kubeconfig" \
    --container-runtime=remote --container-runtime-endpoint="unix://$DIR/containerd/containerd.sock" \
    --pod-infra-container-image=localhost/kubeinvoke/pause:1 --root-dir="$DIR/kubelet/root" \
    --hostname-override="$NODE_NAME" --v=1 \
    > "$DIR/kubelet.log" 2>&1 < /dev/null &
  echo $! > "$DIR/kubelet.pid"
}

up() {
  "$HERE/prereqs.sh"
  for tool in etcd openssl curl containerd runc nsenter unshare; do
    command -v "$tool" >/dev/null || die "$tool is missing (make prereqs installs it)"
  done
  # The API server reaches the kubelet by the node's host name: it must resolve to loopback.
  getent hosts "$NODE_NAME" | grep -Eq '^(127\.|::1)' || die "node name $NODE_NAME does not resolve to loopback"
  if [ -f "$DIR/apiserver.pid" ] && kill -0 "$(cat "$DIR/apiserver.pid")" 2>/dev/null; then
    say "already running in $DIR"; echo "$DIR/cluster.env"; return 0
  fi
  rm -rf "$DIR"; mkdir -p "$DIR/pki" "$DIR/etcd"
  pki=$DIR/pki
  say "certificates"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=kubeinvoke-local-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  sign apiserver kube-apiserver "" \
    "IP:127.0.0.1,IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  sign apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  sign controller-manager system:kube-controller-manager
  sign scheduler system:kube-scheduler
  sign kubelet "system:node:$NODE_NAME" system:nodes
  sign kubelet-serving "$NODE_NAME" "" "DNS:$NODE_NAME,IP:127.0.0.1"
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null

  local admin_token user_token
  admin_token=$(openssl rand -hex 24)
  user_token=$(openssl rand -hex 24)
  {
    printf '%s,admin,admin-uid,"system:masters"\n' "$admin_token"
    # A second admin identity, for kubeconfigs that the emulator hands out (exports must work).
    printf '%s,exported-user,exported-user-uid,"system:masters"\n' "$user_token"
  } > "$pki/tokens.csv"

  local etcd_port etcd_peer api_port cm_port sched_port
  etcd_port=$(free_port); etcd_peer=$(free_port); api_port=$(free_port)
  cm_port=$(free_port); sched_port=$(free_port)
  say "etcd on 127.0.0.1:$etcd_port"
  setsid etcd --data-dir "$DIR/etcd" --name kubeinvoke \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "kubeinvoke=http://127.0.0.1:$etcd_peer" \
    > "$DIR/etcd.log" 2>&1 < /dev/null &
  echo $! > "$DIR/etcd.pid"
  wait_for 30 etcd curl -sf "http://127.0.0.1:$etcd_port/health" || { tail -20 "$DIR/etcd.log" >&2; die "etcd did not become healthy in 30s"; }

  # Services get addresses in 127.0.100.0/24: no private range is ever used, and nothing routes there
  # (there is no kube-proxy; pods reach the API server on 127.0.0.1 with the host network).
  say "kube-apiserver $VERSION on https://127.0.0.1:$api_port"
  # Audit: who created which RemoteCommand (the response carries its uid), which the operator's
  # audit line joins to the correlation id Azure's activity log shows (tests/tenancy.rs).
  cat > "$DIR/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: RequestResponse
    verbs: [create]
    resources: [{group: kubeinvoke.io, resources: [remotecommands]}]
  - level: None
POLICY
  setsid "$BIN/kube-apiserver" \
    --audit-policy-file="$DIR/audit-policy.yaml" --audit-log-path="$DIR/audit.log" --audit-log-format=json \
    --etcd-servers="http://127.0.0.1:$etcd_port" --secure-port="$api_port" --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" --token-auth-file="$pki/tokens.csv" --authorization-mode=Node,RBAC \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$pki/ca.crt" --kubelet-preferred-address-types=Hostname \
    --service-account-issuer=https://kubernetes.default.svc --api-audiences=https://kubernetes.default.svc \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range=127.0.100.0/24 \
    --enable-admission-plugins=NamespaceLifecycle,ServiceAccount,NodeRestriction,DefaultTolerationSeconds \
    --allow-privileged=false --insecure-port=0 \
    > "$DIR/apiserver.log" 2>&1 < /dev/null &
  echo $! > "$DIR/apiserver.pid"
  server="https://127.0.0.1:$api_port"
  if ! wait_for 90 kube-apiserver curl -sf --cacert "$pki/ca.crt" -H "Authorization: Bearer $admin_token" "$server/readyz"; then
    tail -30 "$DIR/apiserver.log" >&2
    down_quiet
    die "kube-apiserver did not become ready in 90s (log above)"
  fi
  for c in controller-manager scheduler kubelet; do component_kubeconfig "$c"; done

  say "kube-controller-manager and kube-scheduler"
  setsid "$BIN/kube-controller-manager" --kubeconfig="$DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$DIR/controller-manager.kubeconfig" --authorization-kubeconfig="$DIR/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --port=0 --secure-port="$cm_port" --leader-elect=false \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" --use-service-account-credentials \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
    --controllers='*,-nodeipam,-service,-route,-cloud-node-lifecycle' \
    > "$DIR/controller-manager.log" 2>&1 < /dev/null &
  echo $! > "$DIR/controller-manager.pid"
  setsid "$BIN/kube-scheduler" --kubeconfig="$DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig="$DIR/scheduler.kubeconfig" --authorization-kubeconfig="$DIR/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --port=0 --secure-port="$sched_port" --leader-elect=false \
    > "$DIR/scheduler.log" 2>&1 < /dev/null &
  echo $! > "$DIR/scheduler.pid"

  start_node_namespace
  start_containerd
  start_kubelet

  cat > "$DIR/kubeconfig" <<KCFG
apiVersion: v1
kind: Config
clusters:
- name: kubeinvoke-local
  cluster:
    server: $server
    certificate-authority: $pki/ca.crt
users:
- name: admin
  user:
    token: $admin_token
contexts:
- name: kubeinvoke-local
  context: {cluster: kubeinvoke-local, user: admin, namespace: default}
current-context: kubeinvoke-local
KCFG
  chmod 600 "$DIR"/*.kubeconfig "$DIR/kubeconfig"
  local kubectl=("$BIN/kubectl" --kubeconfig "$DIR/kubeconfig")
  node_ready() {
    [ "$("${kubectl[@]}" get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
  }
  if ! wait_for 90 "node Ready" node_ready; then
    tail -30 "$DIR/kubelet.log" >&2
    down_quiet
    die "node $NODE_NAME did not become Ready in 90s (kubelet log above)"
  fi
  # The default ServiceAccount appears once the controller-manager runs; pods need it.
  wait_for 60 "default ServiceAccount" "${kubectl[@]}" get serviceaccount default -n default \
    || die "the controller-manager created no default ServiceAccount in 60s (log: $DIR/controller-manager.log)"

  cat > "$DIR/cluster.env" <<ENV
export KUBECONFIG=$DIR/kubeconfig
export KUBEINVOKE_CLUSTER_DIR=$DIR
export KUBEINVOKE_APISERVER=$server
export KUBEINVOKE_APISERVER_PORT=$api_port
export KUBEINVOKE_ADMIN_TOKEN=$admin_token
export KUBEINVOKE_USER_TOKEN=$user_token
export KUBEINVOKE_CA_FILE=$pki/ca.crt
export KUBEINVOKE_KUBECTL=$BIN/kubectl
export KUBEINVOKE_HELM=$(helm_path)
export KUBEINVOKE_NODE=$NODE_NAME
export KUBEINVOKE_CONTAINERD_SOCKET=$DIR/containerd/containerd.sock
export HELM_CACHE_HOME=$DIR/helm/cache
export HELM_CONFIG_HOME=$DIR/helm/config
export HELM_DATA_HOME=$DIR/helm/data
ENV
  local version
  version=$(curl -sf --cacert "$pki/ca.crt" -H "Authorization: Bearer $admin_token" "$server/version" | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')
  say "ready: kube-apiserver $version at $server, node $NODE_NAME Ready (env: $DIR/cluster.env)"
  echo "$DIR/cluster.env"
}

# Stops what was started in DIR, each process by its pid file: first the node (kubelet, then every
# container and its shim, then containerd and the mount namespace), then whatever else left a pid
# file there (`make demo` adds the emulator), then the control plane, the API server before etcd.
down_quiet() {
  stop_pid "$DIR/kubelet.pid"
  local sock=$DIR/containerd/containerd.sock
  if [ -S "$sock" ] && [ -f "$DIR/containerd.pid" ] && kill -0 "$(cat "$DIR/containerd.pid")" 2>/dev/null; then
    local task
    for task in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$sock" -n k8s.io tasks kill --all -s SIGKILL "$task" >/dev/null 2>&1 || true
    done
    for task in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
      wait_for 10 "task $task to stop" bash -c "ctr --address '$sock' -n k8s.io tasks ls | grep '^$task ' | grep -q STOPPED" || true
      ctr --address "$sock" -n k8s.io tasks delete "$task" >/dev/null 2>&1 || true
    done
  fi
  stop_pid "$DIR/containerd.pid"
  # A shim outlives containerd; it is ours when its command line names our socket.
  local pid
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $sock" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  stop_pid "$DIR/ns.pid"
  local f
  for f in "$DIR"/*.pid; do
    case "$f" in */apiserver.pid|*/etcd.pid) ;; *) stop_pid "$f" ;; esac
  done
  stop_pid "$DIR/apiserver.pid"
  stop_pid "$DIR/etcd.pid"
}

down() {
  [ -d "$DIR" ] || { say "nothing in $DIR"; return 0; }
  down_quiet
  rm -rf "$DIR"
  say "stopped and removed $DIR"
}

status() {
  for p in etcd apiserver controller-manager scheduler ns containerd kubelet; do
    if [ -f "$DIR/$p.pid" ] && kill -0 "$(cat "$DIR/$p.pid")" 2>/dev/null; then
      echo "$p: running (pid $(cat "$DIR/$p.pid"))"
    else
      echo "$p: not running"
    fi
  done
}

case "$cmd" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: hack/cluster.sh up|down|status [DIR]" ;;
esac
