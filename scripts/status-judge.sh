#!/usr/bin/env bash
# Builds tests/status-judge (Flux's kstatus library and Argo CD's Lua runtime, as a
# small Go program the status tests feed objects to) with the machine's Go toolchain into
#   ${SALES_OPERATOR_CACHE:-$HOME/.cache/sales-operator}/status-judge-<hash of its source>/status-judge
# Module versions are pinned by its go.mod/go.sum. Idempotent; prints the binary's path.
set -euo pipefail
src="$(cd "$(dirname "$0")/../tests/status-judge" && pwd)"
export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "status-judge: go is not installed" >&2; exit 1; }
gominor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
if (( gominor < 26 )); then export GOTOOLCHAIN=go1.26.8; fi
key=$(cd "$src" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-16)
dir="${SALES_OPERATOR_CACHE:-$HOME/.cache/sales-operator}/status-judge-$key"
bin="$dir/status-judge"
if [[ ! -x "$bin" ]]; then
  mkdir -p "$dir"
  exec 9>"$dir/.build.lock"
  flock 9
  if [[ ! -x "$bin" ]]; then
    echo "status-judge: building into $dir" >&2
    (cd "$src" && GOFLAGS=-mod=readonly go build -trimpath -buildvcs=false -o "$bin.tmp" .)
    mv -f "$bin.tmp" "$bin"
  fi
fi
echo "$bin"
