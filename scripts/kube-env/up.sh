#!/usr/bin/env bash
# up.sh: build (if needed) and start one long-lived instance for a person, in
# ${KUBE_ENV_DIR:-${TMPDIR:-/tmp}/sales-operator-kube}; prints the exports to use it.
. "$(dirname "$0")/lib.sh"
DIR=${KUBE_ENV_DIR:-${TMPDIR:-/tmp}/sales-operator-kube}
if [[ -f "$DIR/pids/kube-apiserver" ]] && kill -0 "$(cat "$DIR/pids/kube-apiserver")" 2>/dev/null; then
  log "already running in $DIR"
else
  stop_instance "$DIR"                     # leftovers of a crashed instance
  "$KUBE_ENV_SCRIPTS/build.sh" >/dev/null
  "$KUBE_ENV_SCRIPTS/start.sh" "$DIR" >/dev/null
fi
cat <<OUT
# kube-env is up: $(cat "$DIR/server-url")   (stop it with scripts/kube-env/down.sh)
export KUBECONFIG=$DIR/kubeconfig
export PATH=$KUBE_ENV_BIN:\$PATH
OUT
