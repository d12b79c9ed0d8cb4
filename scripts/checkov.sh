#!/usr/bin/env bash
# checkov (PyPI), pinned, in a venv cached outside the repo: the static analyser
# tests/it/chart.rs runs on the chart's rendered output. Prints the checkov path.
#   scripts/checkov.sh install     create the venv if missing (idempotent)
set -euo pipefail

CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"
CACHE="${SALES_OPERATOR_CACHE:-$HOME/.cache/sales-operator}"
VENV="$CACHE/checkov-$CHECKOV_VERSION"

# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
pip_venv "$VENV" "checkov==$CHECKOV_VERSION"
echo "$VENV/bin/checkov"
