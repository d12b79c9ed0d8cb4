#!/usr/bin/env bash
# stop.sh DIR: stops the instance started by start.sh in DIR and deletes DIR.
. "$(dirname "$0")/lib.sh"
DIR=${1:?usage: stop.sh DIR}
[[ -d "$DIR" ]] || exit 0
if [[ -f "$DIR/watchdog.pid" ]]; then
  w=$(cat "$DIR/watchdog.pid")
  [[ "$w" == "$$" ]] || kill "$w" 2>/dev/null || true   # the watchdog execs into us
fi
stop_instance "$DIR"
