#!/usr/bin/env bash
# Builds tests/status-judge (Flux's kstatus library and Argo CD's Lua runtime, as a
# small Go program the status tests feed objects to) with the machine's Go toolchain into
#   ${SALES_OPERATOR_CACHE:-$HOME/.cache/sales-operator}/status-judge-<hash of its source>/status-judge
# Module versions are pinned by its go.mod/go.sum. Idempotent; prints the binary's path.
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
go_program status-judge "$(cd "$(dirname "$0")/../tests/status-judge" && pwd)"
