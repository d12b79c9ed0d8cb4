#!/usr/bin/env bash
# gen-k8s-gomod.sh VERSION (e.g. v1.37.2): regenerate go/k8s/go.mod + go.sum for
# another Kubernetes release, then update K8S_VERSION in lib.sh.
# Every staging module that k8s.io/kubernetes requires at v0.0.0 (and replaces
# with ./staging/...) is replaced by its published twin v0.<minor>.<patch>.
. "$(dirname "$0")/lib.sh"
v=${1:?usage: gen-k8s-gomod.sh vX.Y.Z}
twin="v0.${v#v1.}"
mod=$(go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
d="$KUBE_ENV_SCRIPTS/go/k8s"
head -7 "$d/go.mod" | grep '^//' > "$d/go.mod.new" || true
{
  printf 'module sales-operator.dev/kube-env/k8s\n\ngo %s\n\ntool (\n' "$(sed -n 's/^go //p' "$mod")"
  for t in kube-apiserver kube-controller-manager kube-scheduler kubectl; do printf '\tk8s.io/kubernetes/cmd/%s\n' "$t"; done
  printf ')\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$v"
  awk -v twin="$twin" '/^\t+k8s\.io\/[^ ]+ v0\.0\.0$/{printf "\t%s => %s %s\n", $1, $1, twin}' "$mod"
  printf ')\n'
} >> "$d/go.mod.new"
mv "$d/go.mod.new" "$d/go.mod"
rm -f "$d/go.sum"
(cd "$d" && go mod tidy)
log "regenerated $d/go.mod for $v; now set K8S_VERSION=$v in lib.sh"
