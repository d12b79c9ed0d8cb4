#!/usr/bin/env bash
# parliament (PyPI), pinned, in a venv cached outside the repo: it carries AWS's Service
# Authorization Reference and checks IAM policies against it (actions exist, resources match
# the resource types an action supports, condition keys are valid for it).
#   scripts/iam-lint.sh install          create the venv if missing (idempotent)
#   scripts/iam-lint.sh check < POLICIES  JSON lines {"name", "policy"} in; JSON findings out
set -euo pipefail

PARLIAMENT_VERSION="${PARLIAMENT_VERSION:-1.6.4}"
CACHE="${SALES_OPERATOR_CACHE:-$HOME/.cache/sales-operator}"
VENV="$CACHE/parliament-$PARLIAMENT_VERSION"
HERE="$(cd "$(dirname "$0")" && pwd)"

# shellcheck source=common.sh
. "$HERE/common.sh"

install() { pip_venv "$VENV" "parliament==$PARLIAMENT_VERSION"; }

case "${1:-}" in
  install) install ;;
  check) install; exec "$VENV/bin/python" "$HERE/iam_lint.py" ;;
  *) echo "usage: $0 install|check" >&2; exit 2 ;;
esac
