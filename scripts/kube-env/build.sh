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
# a second try absorbs a flaky module download; a compile error fails twice, fast
retry() { "$@" || { log "retrying once: $*"; "$@"; }; }
start=$(date +%s)

# The helper module go/tools must pin the versions lib.sh names (gen-gomod.sh writes both).
mod="$KUBE_ENV_SCRIPTS/go/tools/go.mod"
for pin in "${KUBE_ENV_MODULES[@]}"; do
  grep -qE "^[[:space:]]+${pin}( |$)" "$mod" || die "$mod does not require $pin: run scripts/kube-env/gen-gomod.sh"
done
packages=()
for b in "${missing[@]}"; do packages+=("$(kube_env_package "$b")"); done
# Stamp the versions like Kubernetes' own build does (hack/lib/version.sh); otherwise /version
# says v0.0.0-master, which breaks helm's kubeVersion checks. And helm's, like its Makefile.
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
log "building ${missing[*]} in one go build (slow: ~15 min cold on 2 cores)"
# -dwarf=false: the compiler writes no debug info that -s -w would strip at the link anyway
(cd "$KUBE_ENV_SCRIPTS/go/tools" && retry go build -trimpath -buildvcs=false -gcflags=all=-dwarf=false "-ldflags=$ld" -o "$tmp/" "${packages[@]}")
# go names a binary after its package path's last element that is not a major version
if [[ -f "$tmp/server" ]]; then mv "$tmp/server" "$tmp/etcd"; fi
for f in "$tmp"/*; do mv -f "$f" "$KUBE_ENV_BIN/"; done

for b in "${missing[@]}"; do [[ -x "$KUBE_ENV_BIN/$b" ]] || die "$b was not built"; done
log "built ${missing[*]} in $(( $(date +%s) - start ))s -> $KUBE_ENV_BIN"
echo "$KUBE_ENV_BIN"
