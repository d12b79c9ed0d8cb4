#!/usr/bin/env bash
# actionlint (github.com/rhysd/actionlint, a Go module), pinned, built with the machine's Go into
#   ${SALES_OPERATOR_CACHE:-$HOME/.cache/sales-operator}/actionlint-<version>/actionlint
# and run on .github/workflows/, with shellcheck (Debian) on every `run:` script.
#   scripts/actionlint.sh install        build it and install shellcheck if missing; prints its path
#   scripts/actionlint.sh [FILE...]      lint the given workflows (default: .github/workflows/*.yml)
set -euo pipefail

ACTIONLINT_VERSION="${ACTIONLINT_VERSION:-v1.7.12}"
dir="${SALES_OPERATOR_CACHE:-$HOME/.cache/sales-operator}/actionlint-$ACTIONLINT_VERSION"
bin="$dir/actionlint"

# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
apt_install shellcheck
if [[ ! -x "$bin" ]]; then
  go_toolchain actionlint
  mkdir -p "$dir"
  exec 9>"$dir/.build.lock"
  flock 9
  if [[ ! -x "$bin" ]]; then
    echo "actionlint: building $ACTIONLINT_VERSION into $dir" >&2
    GOBIN="$dir/.tmp" go install -trimpath -buildvcs=false -ldflags="-s -w" \
      "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
    mv -f "$dir/.tmp/actionlint" "$bin"
    rmdir "$dir/.tmp"
  fi
fi

if [[ "${1:-}" == install ]]; then echo "$bin"; exit 0; fi
cd "$(dirname "$0")/.."
if (( $# == 0 )); then set -- .github/workflows/*.yml; fi
exec "$bin" -no-color -oneline -shellcheck="$(command -v shellcheck)" -pyflakes= "$@"
