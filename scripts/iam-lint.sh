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

install() {
  if [ -f "$VENV/.installed" ]; then return 0; fi
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "parliament==$PARLIAMENT_VERSION" >&2
  touch "$VENV/.installed"
}

case "${1:-}" in
  install) install ;;
  check) install; exec "$VENV/bin/python" "$HERE/iam_lint.py" ;;
  *) echo "usage: $0 install|check" >&2; exit 2 ;;
esac
