#!/usr/bin/env bash
# down.sh: stop the instance started by up.sh and delete its data.
. "$(dirname "$0")/lib.sh"
DIR=${KUBE_ENV_DIR:-${TMPDIR:-/tmp}/sales-operator-kube}
"$KUBE_ENV_SCRIPTS/stop.sh" "$DIR"
log "stopped $DIR"
