#!/usr/bin/env bash
# Builds the pinned Kubernetes test binaries into a cache outside the repo:
#   ${SALES_OPERATOR_CACHE:-$HOME/.cache/sales-operator}/kube-env-<key>/bin
# Idempotent: skips every binary already there. Prints the bin dir on stdout.
. "$(dirname "$0")/lib.sh"

command -v go >/dev/null || die "go is not installed"
# Every helper module says `go 1.26.0`; an older local Go fetches 1.26 from the proxy.
gominor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
if (( gominor < 26 )); then export GOTOOLCHAIN=go1.26.8; fi

mkdir -p "$KUBE_ENV_BIN"
# Concurrent callers (several test binaries, up.sh) wait for one another.
exec 9>"$KUBE_ENV_CACHE/.build.lock"
flock 9

missing=()
for b in "${KUBE_ENV_BINARIES[@]}"; do [[ -x "$KUBE_ENV_BIN/$b" ]] || missing+=("$b"); done
if (( ${#missing[@]} == 0 )); then
  log "cached: $KUBE_ENV_BIN (${KUBE_ENV_BINARIES[*]})"
  echo "$KUBE_ENV_BIN"; exit 0
fi

tmp=$(mktemp -d "$KUBE_ENV_CACHE/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
flags=(-trimpath -buildvcs=false "-ldflags=-s -w")
has() { local x; for x in "${missing[@]}"; do [[ $x == "$1" ]] && return 0; done; return 1; }
# a second try absorbs a flaky module download; a compile error fails twice, fast
retry() { "$@" || { log "retrying once: $*"; "$@"; }; }
# move what a step built into the cache at once, so a later failure keeps it
keep() { local f; for f in "$tmp"/*; do [[ -f "$f" ]] && mv -f "$f" "$KUBE_ENV_BIN/"; done; return 0; }
start=$(date +%s)

k8s=()
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do has "$b" && k8s+=("k8s.io/kubernetes/cmd/$b"); done
if (( ${#k8s[@]} )); then
  log "building ${k8s[*]##*/} from k8s.io/kubernetes $K8S_VERSION (slow: ~13 min cold on 2 cores)"
  # Stamp the version like Kubernetes' own build does (hack/lib/version.sh);
  # otherwise /version says v0.0.0-master, which breaks helm's kubeVersion checks.
  minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  ld="-s -w"
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  (cd "$KUBE_ENV_SCRIPTS/go/k8s" && retry go build -trimpath -buildvcs=false "-ldflags=$ld" -o "$tmp/" "${k8s[@]}")
  keep
fi
if has etcd; then
  log "building etcd $ETCD_VERSION"
  (cd "$KUBE_ENV_SCRIPTS/go/etcd" && retry go build "${flags[@]}" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
  keep
fi
if has helm; then
  log "building helm $HELM_VERSION"
  GOBIN="$tmp" retry go install -trimpath -buildvcs=false \
    "-ldflags=-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  keep
fi
if has kwok; then
  log "building kwok $KWOK_VERSION"
  GOBIN="$tmp" retry go install "${flags[@]}" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  keep
fi

for b in "${missing[@]}"; do [[ -x "$KUBE_ENV_BIN/$b" ]] || die "$b was not built"; done
log "built ${missing[*]} in $(( $(date +%s) - start ))s -> $KUBE_ENV_BIN"
echo "$KUBE_ENV_BIN"
