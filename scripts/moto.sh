#!/usr/bin/env bash
# The local AWS emulator (moto server), pinned, in a venv cached outside the repo.
#
#   scripts/moto.sh install          create/refresh the venv (idempotent)
#   scripts/moto.sh start [PORT]     start on 127.0.0.1:PORT (default 5000) in the
#                                    background; prints the endpoint URL
#   scripts/moto.sh stop [PORT]      stop the server started on PORT
#   scripts/moto.sh bin              print the server's path (installs first):
#                                    tests/aws-emulator/moto-server, moto_server plus the AWS
#                                    behaviours of tests/aws-emulator/moto_aws.py
#   scripts/moto.sh venv             print the venv's path (installs first)
set -euo pipefail

MOTO_VERSION="${MOTO_VERSION:-5.2.5}"
# boto3/botocore pinned too: moto takes whatever is newest, and botocore 1.44.18 speaks
# rest-json to Athena, which moto 5.2.5 answers with 404 (the demo's scripts/named_query.py).
BOTO_VERSION="${BOTO_VERSION:-1.44.8}"
CACHE="${SALES_OPERATOR_CACHE:-$HOME/.cache/sales-operator}"
VENV="$CACHE/moto-$MOTO_VERSION-boto-$BOTO_VERSION"
HERE="$(cd "$(dirname "$0")" && pwd)"
# The emulator: moto plus what AWS does and moto does not (docs/aws-behaviour.md).
SERVER="$(cd "$HERE/../tests/aws-emulator" && pwd)/moto-server"
STATE="${SALES_OPERATOR_STATE:-${TMPDIR:-/tmp}/sales-operator-moto}"

# shellcheck source=common.sh
. "$HERE/common.sh"

install() { pip_venv "$VENV" "moto[server]==$MOTO_VERSION" "boto3==$BOTO_VERSION" "botocore==$BOTO_VERSION"; }

start() {
  local port="${1:-5000}"
  install
  mkdir -p "$STATE"
  if curl -fsS "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1; then
    echo "http://127.0.0.1:$port"
    return 0
  fi
  nohup "$SERVER" -H 127.0.0.1 -p "$port" >"$STATE/moto-$port.log" 2>&1 &
  echo $! >"$STATE/moto-$port.pid"
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1; then
      echo "http://127.0.0.1:$port"
      return 0
    fi
    sleep 0.1
  done
  echo "moto did not start on port $port; log: $STATE/moto-$port.log" >&2
  return 1
}

stop() { stop_pidfile "$STATE/moto-${1:-5000}.pid"; }

case "${1:-}" in
  install) install ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  bin) install; echo "$SERVER" ;;
  venv) install; echo "$VENV" ;;
  *) echo "usage: $0 install|start [PORT]|stop [PORT]|bin|venv" >&2; exit 2 ;;
esac
