#!/usr/bin/env bash
# What tests/it/dashboards.rs and tests/it/chart.rs check the chart's monitoring objects with,
# pinned and cached under ${SALES_OPERATOR_CACHE:-$HOME/.cache/sales-operator}:
#   - prometheus-operator's own CRDs for ServiceMonitor and PrometheusRule (from its Go module,
#     example/prometheus-operator-crd/, through the Go module proxy, checked against the pinned
#     go.sum hash), applied into the test API server so that it validates the rendered objects
#     against the real schemas;
#   - tests/promql-names, Prometheus's PromQL parser as a small Go program, to parse the alert
#     and dashboard expressions and list the metrics they select.
# Cold (empty Go caches, 2 busy cores): ~1 s for the CRDs, 30-45 s (downloads, build) for promql-names.
#   scripts/monitoring-tools.sh install        both (idempotent)
#   scripts/monitoring-tools.sh crds           prints the directory holding the two CRDs
#   scripts/monitoring-tools.sh promql-names   prints the parser program's path
set -euo pipefail

PROMETHEUS_OPERATOR_VERSION=v0.85.0
# go.sum's h1 hash of the module zip at that version.
PROMETHEUS_OPERATOR_SUM="h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s="
CACHE="${SALES_OPERATOR_CACHE:-$HOME/.cache/sales-operator}"
src="$(cd "$(dirname "$0")/../tests/promql-names" && pwd)"
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
go_toolchain monitoring-tools

crds() {
  local dir="$CACHE/prometheus-operator-crds-$PROMETHEUS_OPERATOR_VERSION" module json sum
  if [[ ! -f "$dir/.complete" ]]; then
    mkdir -p "$dir"
    exec 8>"$dir/.lock"
    flock 8
    if [[ ! -f "$dir/.complete" ]]; then
      echo "monitoring-tools: prometheus-operator $PROMETHEUS_OPERATOR_VERSION CRDs into $dir" >&2
      json=$(cd "$dir" && GOFLAGS=-mod=mod go mod download -json \
        "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")
      sum=$(sed -n 's/^[[:space:]]*"Sum": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")
      if [[ "$sum" != "$PROMETHEUS_OPERATOR_SUM" ]]; then
        echo "monitoring-tools: prometheus-operator $PROMETHEUS_OPERATOR_VERSION has hash $sum, expected $PROMETHEUS_OPERATOR_SUM" >&2
        exit 1
      fi
      module=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")
      for kind in servicemonitors prometheusrules; do
        cp "$module/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$dir/"
      done
      chmod u+w "$dir"/*.yaml
      touch "$dir/.complete"
    fi
    exec 8>&-
  fi
  echo "$dir"
}

promql_names() { go_program promql-names "$src" -ldflags="-s -w"; }

case "${1:-}" in
  install) crds >/dev/null; promql_names >/dev/null ;;
  crds) crds ;;
  promql-names) promql_names ;;
  *) echo "usage: $0 install|crds|promql-names" >&2; exit 2 ;;
esac
