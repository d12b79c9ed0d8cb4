#!/usr/bin/env bash
# start.sh [--watch-pid PID] [DIR]
# Starts etcd, kube-apiserver (RBAC on), kube-controller-manager, kube-scheduler
# and kwok (plus fake nodes) on free loopback ports, with all state in DIR
# (default: a new temp dir). Waits until the cluster is usable, then prints DIR
# on stdout. DIR/kubeconfig is an admin (system:masters) kubeconfig.
# --watch-pid PID: a watchdog stops the instance (and deletes DIR) once PID exits.
. "$(dirname "$0")/lib.sh"

watch_pid=""
while (( $# )); do
  case $1 in
    --watch-pid) watch_pid=$2; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
if [[ -n "${1:-}" ]]; then DIR=$1; mkdir -p "$DIR"; else DIR=$(mktemp -d "${TMPDIR:-/tmp}/sales-operator-kube.XXXXXX"); fi
DIR=$(cd "$DIR" && pwd)
[[ ! -d "$DIR/pids" ]] || die "$DIR already has a running instance (stop it with stop.sh $DIR)"
for b in "${KUBE_ENV_BINARIES[@]}"; do [[ -x "$KUBE_ENV_BIN/$b" ]] || die "missing $KUBE_ENV_BIN/$b: run scripts/kube-env/build.sh"; done
B=$KUBE_ENV_BIN
NODES=${KUBE_ENV_NODES:-2}
mkdir -p "$DIR"/{pids,logs,pki,etcd}
chmod 700 "$DIR/etcd" "$DIR/pki"
t0=$(date +%s%N)
phases=""
mark() { phases+=" $1 $(( ($(date +%s%N) - t0) / 1000000 ))"; }   # elapsed ms at the end of a phase

fail() {
  (( $? )) || return 0
  log "start failed; last log lines:"
  for f in "$DIR"/logs/*.log; do [[ -s "$f" ]] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done
  stop_instance "$DIR" keep
  exit 1
}
trap fail EXIT

# run NAME CMD...: start a component in its own session, stdio to DIR/logs
run() {
  local name=$1; shift
  setsid "$@" </dev/null >"$DIR/logs/$name.log" 2>&1 &
  echo $! > "$DIR/pids/$name"
}
# every started component still running? (checked while waiting: fail fast)
all_alive() {
  local f; for f in "$DIR"/pids/*; do
    kill -0 "$(cat "$f")" 2>/dev/null || { log "${f##*/} exited"; return 1; }
  done
}
WAIT_GUARD=all_alive

# ---- PKI: CA, serving cert, service-account key, admin token ----------------
P=$DIR/pki
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
  -subj "/CN=sales-operator-kube-env-ca" -keyout "$P/ca.key" -out "$P/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=kube-apiserver" \
  -keyout "$P/apiserver.key" -out "$P/apiserver.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' > "$P/ext.cnf"
openssl x509 -req -in "$P/apiserver.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial \
  -days 365 -extfile "$P/ext.cnf" -out "$P/apiserver.crt" 2>/dev/null
openssl genrsa -out "$P/sa.key" 2048 2>/dev/null
openssl rsa -in "$P/sa.key" -pubout -out "$P/sa.pub" 2>/dev/null
TOKEN=$(openssl rand -hex 24)
echo "$TOKEN,admin,admin,system:masters" > "$P/tokens.csv"
chmod 600 "$P"/*.key "$P/tokens.csv"

# ---- etcd --------------------------------------------------------------------
ETCD_PORT=$(free_port "$DIR"); PEER_PORT=$(free_port "$DIR")
run etcd "$B/etcd" --name=kube-env --data-dir="$DIR/etcd" \
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="http://127.0.0.1:$PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$PEER_PORT" \
  --initial-cluster="kube-env=http://127.0.0.1:$PEER_PORT" \
  --unsafe-no-fsync --log-level=warn
etcd_ok() { curl -sf "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }
mark pki
wait_until 30 etcd etcd_ok
mark etcd

# ---- kube-apiserver ----------------------------------------------------------
API_PORT=$(free_port "$DIR")
SERVER="https://127.0.0.1:$API_PORT"
run kube-apiserver "$B/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
  --cert-dir="$P" --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
  --client-ca-file="$P/ca.crt" --token-auth-file="$P/tokens.csv" \
  --authorization-mode=RBAC \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
  --service-cluster-ip-range=10.96.0.0/16 --allow-privileged=true \
  --endpoint-reconciler-type=none --profiling=false
ready() { curl -sf --cacert "$P/ca.crt" -H "Authorization: Bearer $TOKEN" "$SERVER/readyz" | grep -qx ok; }
wait_until 90 kube-apiserver/readyz ready
mark apiserver

CA_DATA=$(base64 -w0 < "$P/ca.crt")
cat > "$DIR/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: kube-env
  cluster:
    server: $SERVER
    certificate-authority-data: $CA_DATA
users:
- name: admin
  user:
    token: $TOKEN
contexts:
- name: kube-env
  context: {cluster: kube-env, user: admin, namespace: default}
current-context: kube-env
KC
chmod 600 "$DIR/kubeconfig"
echo "$SERVER" > "$DIR/server-url"
echo "$B" > "$DIR/bin-dir"
K() { "$B/kubectl" --kubeconfig="$DIR/kubeconfig" "$@"; }

# ---- controllers -------------------------------------------------------------
run kube-controller-manager "$B/kube-controller-manager" --kubeconfig="$DIR/kubeconfig" \
  --leader-elect=false --bind-address=127.0.0.1 --secure-port=0 \
  --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
  --controllers='*' --concurrent-gc-syncs=5
run kube-scheduler "$B/kube-scheduler" --kubeconfig="$DIR/kubeconfig" \
  --leader-elect=false --bind-address=127.0.0.1 --secure-port=0
KWOK_PORT=$(free_port "$DIR")
run kwok "$B/kwok" --kubeconfig="$DIR/kubeconfig" \
  --manage-all-nodes=false \
  --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --config="$KUBE_ENV_SCRIPTS/kwok.yaml" --node-lease-duration-seconds=40 \
  --cidr=10.244.0.0/16 --node-ip=127.0.0.1 \
  --server-address="127.0.0.1:$KWOK_PORT"

# Fake nodes: kwok keeps them Ready and marks pods bound to them Running.
for i in $(seq 0 $(( NODES - 1 ))); do
  cat <<NODE
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux, kubernetes.io/arch: amd64, type: kwok}
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
  nodeInfo: {architecture: amd64, operatingSystem: linux, kubeletVersion: fake, kubeProxyVersion: fake}
---
NODE
done | K apply -f - >/dev/null

wait_until 60 "default serviceaccount" K get serviceaccount default -n default
mark serviceaccount
wait_until 60 "fake nodes Ready" K wait --for=condition=Ready node -l type=kwok --timeout=1s
mark nodes
all_alive

if [[ -n "$watch_pid" ]]; then
  # shellcheck disable=SC2016  # expanded by the watchdog's bash
  setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2" "$3"' \
    watchdog "$watch_pid" "$KUBE_ENV_SCRIPTS/stop.sh" "$DIR" </dev/null >/dev/null 2>&1 &
  echo $! > "$DIR/watchdog.pid"
fi
trap - EXIT
log "ready in $(( ($(date +%s%N) - t0) / 1000000 )) ms (ms at end of:$phases): $SERVER (dir $DIR)"
echo "$DIR"
