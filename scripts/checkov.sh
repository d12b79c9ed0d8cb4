#!/usr/bin/env bash
# checkov (PyPI), pinned, in a venv cached outside the repo: the static analyser
# tests/chart.rs runs on the chart's rendered output. Prints the checkov path.
#   scripts/checkov.sh install     create the venv if missing (idempotent)
set -euo pipefail

CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"
CACHE="${SALES_OPERATOR_CACHE:-$HOME/.cache/sales-operator}"
VENV="$CACHE/checkov-$CHECKOV_VERSION"

if [ ! -f "$VENV/.installed" ]; then
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION" >&2
  touch "$VENV/.installed"
fi
echo "$VENV/bin/checkov"
