#!/usr/bin/env bash
# stop.sh DIR: stops the instance started by start.sh in DIR and deletes DIR.
. "$(dirname "$0")/lib.sh"
DIR=${1:?usage: stop.sh DIR}
[[ -d "$DIR" ]] || exit 0
DIR=$(cd "$DIR" && pwd)
if [[ -f "$DIR/watchdog.pid" ]]; then
  w=$(cat "$DIR/watchdog.pid")   # the watchdog execs into this script: don't kill ourselves
  if [[ "$w" != "$$" ]] && tr '\0' ' ' < "/proc/$w/cmdline" 2>/dev/null | grep -qF -- "$DIR"; then
    kill "$w" 2>/dev/null || true
  fi
fi
stop_instance "$DIR"
