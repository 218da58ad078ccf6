#!/usr/bin/env bash
# The local Kubernetes control plane: etcd + kube-apiserver v1.20.2 on free loopback ports, in a
# directory of its own, with TLS, an admin token and the RBAC authorizer.
#
#   hack/cluster.sh up [DIR]     start (builds/caches kube-apiserver first); prints the env file path
#   hack/cluster.sh down [DIR]   stop exactly the processes `up` started in DIR and remove DIR
#   hack/cluster.sh status [DIR]
#
# DIR defaults to $KUBEINVOKE_CLUSTER_DIR or /tmp/kubeinvoke-cluster. `up` writes DIR/cluster.env
# (KUBECONFIG, KUBEINVOKE_APISERVER, KUBEINVOKE_ADMIN_TOKEN, KUBEINVOKE_USER_TOKEN, KUBEINVOKE_CA_FILE,
# KUBEINVOKE_KUBECTL, pids) and DIR/kubeconfig. There is no kubelet or controller-manager: pods never
# run and garbage collection does not happen.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VERSION=v1.20.2
CACHE="${KUBEINVOKE_CACHE:-$HOME/.cache/kubeinvoke}"
BIN="$CACHE/$VERSION"
cmd=${1:-}
DIR=${2:-${KUBEINVOKE_CLUSTER_DIR:-/tmp/kubeinvoke-cluster}}

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

up() {
  "$HERE/build-kube.sh"
  command -v etcd >/dev/null || die "etcd is missing (apt-get install etcd-server)"
  command -v openssl >/dev/null || die "openssl is missing (apt-get install openssl)"
  command -v curl >/dev/null || die "curl is missing (apt-get install curl)"
  if [ -f "$DIR/apiserver.pid" ] && kill -0 "$(cat "$DIR/apiserver.pid")" 2>/dev/null; then
    say "already running in $DIR"; echo "$DIR/cluster.env"; return 0
  fi
  rm -rf "$DIR"; mkdir -p "$DIR/pki" "$DIR/etcd"
  local pki=$DIR/pki
  say "certificates"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=kubeinvoke-local-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n' > "$pki/san.ext"
  openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 30 -extfile "$pki/san.ext" -out "$pki/apiserver.crt" 2>/dev/null
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

  local etcd_port etcd_peer api_port
  etcd_port=$(free_port); etcd_peer=$(free_port); api_port=$(free_port)
  say "etcd on 127.0.0.1:$etcd_port"
  setsid etcd --data-dir "$DIR/etcd" --name kubeinvoke \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "kubeinvoke=http://127.0.0.1:$etcd_peer" \
    > "$DIR/etcd.log" 2>&1 < /dev/null &
  echo $! > "$DIR/etcd.pid"
  wait_for 30 etcd curl -sf "http://127.0.0.1:$etcd_port/health" || { tail -20 "$DIR/etcd.log" >&2; die "etcd did not become healthy in 30s"; }

  say "kube-apiserver $VERSION on https://127.0.0.1:$api_port"
  setsid "$BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$etcd_port" --secure-port="$api_port" --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" --token-auth-file="$pki/tokens.csv" --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc --api-audiences=https://kubernetes.default.svc \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 --enable-admission-plugins=NamespaceLifecycle,ServiceAccount \
    --insecure-port=0 \
    > "$DIR/apiserver.log" 2>&1 < /dev/null &
  echo $! > "$DIR/apiserver.pid"
  local server="https://127.0.0.1:$api_port"
  if ! wait_for 90 kube-apiserver curl -sf --cacert "$pki/ca.crt" -H "Authorization: Bearer $admin_token" "$server/readyz"; then
    tail -30 "$DIR/apiserver.log" >&2
    down_quiet
    die "kube-apiserver did not become ready in 90s (log above)"
  fi

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
  cat > "$DIR/cluster.env" <<ENV
export KUBECONFIG=$DIR/kubeconfig
export KUBEINVOKE_CLUSTER_DIR=$DIR
export KUBEINVOKE_APISERVER=$server
export KUBEINVOKE_ADMIN_TOKEN=$admin_token
export KUBEINVOKE_USER_TOKEN=$user_token
export KUBEINVOKE_CA_FILE=$pki/ca.crt
export KUBEINVOKE_KUBECTL=$BIN/kubectl
ENV
  local version
  version=$(curl -sf --cacert "$pki/ca.crt" -H "Authorization: Bearer $admin_token" "$server/version" | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')
  say "ready: kube-apiserver $version at $server (env: $DIR/cluster.env)"
  echo "$DIR/cluster.env"
}

# Stops what was started in DIR: the control plane, and whatever else left a pid file there
# (`make demo` adds the emulator and the operator); the API server before etcd.
down_quiet() {
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
  for p in etcd apiserver; do
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
