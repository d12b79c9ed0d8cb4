# shellcheck shell=bash disable=SC2034  # variables used by the scripts that source it
# Shared by build.sh, start.sh, stop.sh, up.sh, down.sh. Source it, don't run it.
set -euo pipefail

KUBE_ENV_SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# ---- pinned versions (also in go/tools/go.mod: scripts/kube-env/gen-gomod.sh) -
K8S_VERSION=v1.37.2     # k8s.io/kubernetes; staging modules replaced by v0.37.2
ETCD_VERSION=v3.7.3     # go.etcd.io/etcd/server/v3
HELM_VERSION=v3.22.0    # helm.sh/helm/v3/cmd/helm
KWOK_VERSION=v0.8.0     # sigs.k8s.io/kwok/cmd/kwok
KUBE_ENV_REV=3          # bump when build flags change, to invalidate the cache

KUBE_ENV_KEY="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_helm-${HELM_VERSION}_kwok-${KWOK_VERSION}_r${KUBE_ENV_REV}"
KUBE_ENV_CACHE="${SALES_OPERATOR_CACHE:-$HOME/.cache/sales-operator}/kube-env-${KUBE_ENV_KEY}"
KUBE_ENV_BIN="$KUBE_ENV_CACHE/bin"
KUBE_ENV_BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl helm kwok)
# The modules go/tools requires at the pinned versions, and each binary's package in them.
KUBE_ENV_MODULES=("k8s.io/kubernetes $K8S_VERSION" "go.etcd.io/etcd/server/v3 $ETCD_VERSION"
  "helm.sh/helm/v3 $HELM_VERSION" "sigs.k8s.io/kwok $KWOK_VERSION")
kube_env_package() {
  case $1 in
    etcd) echo go.etcd.io/etcd/server/v3 ;;
    helm) echo helm.sh/helm/v3/cmd/helm ;;
    kwok) echo sigs.k8s.io/kwok/cmd/kwok ;;
    *) echo "k8s.io/kubernetes/cmd/$1" ;;
  esac
}

log() { printf '[kube-env %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Port reservations: a port is ours once `mkdir $KUBE_ENV_PORTS/<port>` succeeded
# (atomic, so concurrent start.sh runs never pick the same one) and nothing
# listens on it. The reservation records the instance dir; stale ones (dir gone)
# are reclaimed.
KUBE_ENV_PORTS="${TMPDIR:-/tmp}/sales-operator-kube-ports"

port_listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port DIR -> prints a free loopback port reserved for instance DIR
free_port() {
  local dir=$1 p owner
  mkdir -p "$KUBE_ENV_PORTS"
  for _ in $(seq 1 200); do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 12000 ))   # below the ephemeral range
    if [[ -d "$KUBE_ENV_PORTS/$p" ]]; then
      owner=$(cat "$KUBE_ENV_PORTS/$p/owner" 2>/dev/null || true)
      if [[ -n "$owner" && ! -d "$owner" ]]; then rm -rf "${KUBE_ENV_PORTS:?}/$p"; fi
    fi
    mkdir "$KUBE_ENV_PORTS/$p" 2>/dev/null || continue
    echo "$dir" > "$KUBE_ENV_PORTS/$p/owner"
    if port_listening "$p"; then rm -rf "${KUBE_ENV_PORTS:?}/$p"; continue; fi
    echo "$p" >> "$dir/ports"
    echo "$p"; return 0
  done
  die "no free port found"
}

release_ports() {
  local dir=$1 p
  [[ -f "$dir/ports" ]] || return 0
  while read -r p; do rm -rf "${KUBE_ENV_PORTS:?}/$p"; done < "$dir/ports"
  rm -f "$dir/ports"
}

# wait_until SECONDS DESCRIPTION CMD... : polls CMD every 0.2 s (gives up early
# when the command named by $WAIT_GUARD fails)
wait_until() {
  local timeout=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    (( $(date +%s) < deadline )) || { log "timed out after ${timeout}s waiting for $what"; return 1; }
    "${WAIT_GUARD:-true}" || return 1
    sleep 0.2
  done
}

# running PID: alive and not a zombie waiting for its reaper
running() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $st != Z* ]]; }

# stop_instance DIR [keep-data]: TERM every recorded pid, KILL what still runs
# after 1 s (the data is thrown away: no need for a graceful shutdown), delete data
stop_instance() {
  local dir=$1 keep=${2:-} f pid pids=()
  [[ -d "$dir" ]] || return 0
  # only pids whose command line names this dir: never a recycled pid of another process
  for f in "$dir"/pids/*; do
    [[ -f "$f" ]] || continue
    pid=$(cat "$f")
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir/" && pids+=("$pid")
  done
  if (( ${#pids[@]} )); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 1 10); do
      local alive=0
      for pid in "${pids[@]}"; do running "$pid" && alive=1; done
      (( alive )) || break
      sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
  fi
  release_ports "$dir"
  rm -rf "$dir/pids"
  [[ -n "$keep" ]] || rm -rf "$dir"
}
