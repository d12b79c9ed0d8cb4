#!/usr/bin/env bash
# Time to Ready of a new pipeline through the AWS-behaviour layer (docs/aws-behaviour.md), for
# `sales-operator apply` and for the controller, next to the critical path of AWS's waits and
# their sequential sum; the AWS calls made meanwhile; and a steady-state apply's calls.
#   scripts/bench-ready.sh [BINARY]   (default: target/debug/sales-operator; waits dominate)
# Prints one markdown table row per set of durations (docs/benchmarks.md).
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
cd "$(dirname "$0")/.."
bin=${1:-${CARGO_TARGET_DIR:-target}/debug/sales-operator}
[[ -x "$bin" ]] || { echo "build $bin first (cargo build)" >&2; exit 1; }

# name: table stream pipe delivery iam_propagation (seconds). "aws": issue #13's measurements.
sets=("aws:8:20:45:40:10" "half:4:10:22:20:5")

work=$(mktemp -d)
kube_bin=$(bash scripts/kube-env/build.sh 2>/dev/null | tail -1)
dir=$(bash scripts/kube-env/start.sh --watch-pid $$ "$work/kube")
export KUBECONFIG=$dir/kubeconfig PATH=$kube_bin:$PATH
export AWS_REGION=eu-west-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true
port="" op_pid=""
stop_all() {
  [[ -n "$op_pid" ]] && kill "$op_pid" 2>/dev/null || true
  op_pid=""
  [[ -n "$port" ]] && SALES_OPERATOR_STATE=$work scripts/moto.sh stop "$port" >/dev/null 2>&1 || true
}
cleanup() { stop_all; bash scripts/kube-env/stop.sh "$dir" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
kubectl apply --server-side -f crds/ >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null

manifest() {  # name namespace
  printf 'apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: %s\n  namespace: %s\nspec: {}\n' "$1" "$2"
}
# Requests the layer saw, by "service:Operation", since the last reset: total, reads, mutating.
calls() { curl -s "$AWS_ENDPOINT_URL/_behaviour/calls" -X "${1:-GET}"; }
summary() {
  python3 -c '
import json, sys, re
calls = json.load(sys.stdin)
read = re.compile(r":(Describe|Get|BatchGet|List|Head|GET|HEAD)")
reads = sum(n for k, n in calls.items() if read.search(k))
describes = sum(n for k, n in calls.items() if ":Describe" in k)
print(sum(calls.values()), reads, sum(calls.values()) - reads, describes)'
}

printf '| durations (table/stream/pipe/delivery/role s) | critical path | sequential sum | apply | controller | AWS calls while converging (apply: reads/mutating; Describe/s) | steady apply: reads / mutating |\n'
printf '|---|---|---|---|---|---|---|\n'
for set in "${sets[@]}"; do
  IFS=: read -r label table stream pipe delivery role <<<"$set"
  rule=$(printf '{"table_creating": %s, "table_backups_unavailable": %s, "stream_creating": %s, "pipe_creating": %s, "delivery_creating": %s, "iam_propagation": %s, "read_after_create": 1}' \
    "$table" "$(( table * 3 ))" "$stream" "$pipe" "$delivery" "$role")
  port=$(free_tcp_port)
  export AWS_ENDPOINT_URL
  AWS_ENDPOINT_URL=$(SALES_OPERATOR_AWS_BEHAVIOUR=$rule SALES_OPERATOR_STATE=$work scripts/moto.sh start "$port")
  critical=$(( role + (table > stream ? table : stream) + (pipe > delivery ? pipe : delivery) ))
  sequential=$(( table + stream + role + pipe + delivery ))

  # apply, from the CLI.
  manifest "cli-$label" bench >"$work/cli.yaml"
  calls DELETE >/dev/null
  t0=$(date +%s.%N)
  "$bin" apply -f "$work/cli.yaml" --wait 15m >"$work/apply.out" 2>"$work/apply.err" || {
    echo "apply failed" >&2; tail -30 "$work/apply.err" >&2; exit 1; }
  apply_s=$(echo "$(date +%s.%N) - $t0" | bc -l)
  read -r total reads muts describes <<<"$(calls | summary)"
  per_s=$(echo "$describes / $apply_s" | bc -l)
  calls DELETE >/dev/null
  "$bin" apply -f "$work/cli.yaml" >/dev/null 2>&1
  read -r _ steady_reads steady_muts _ <<<"$(calls | summary)"

  # The controller, from `kubectl apply`.
  ns="bench-$label"
  kubectl create namespace "$ns" >/dev/null
  mport=$(free_tcp_port)
  "$bin" run --namespace "$ns" --lease-namespace "$ns" --metrics-address "127.0.0.1:$mport" >"$work/operator-$label.log" 2>&1 &
  op_pid=$!
  until curl -sf "127.0.0.1:$mport/readyz" >/dev/null 2>&1; do sleep 0.2; done
  manifest "ctl-$label" "$ns" >"$work/ctl.yaml"
  t0=$(date +%s.%N)
  kubectl apply -f "$work/ctl.yaml" >/dev/null
  until [[ $(kubectl get sp -n "$ns" "ctl-$label" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') == True ]]; do
    sleep 0.5
    (( $(echo "$(date +%s.%N) - $t0 < 900" | bc -l) )) || { echo "controller: not Ready after 15 min" >&2; tail -30 "$work/operator-$label.log" >&2; exit 1; }
  done
  ctl_s=$(echo "$(date +%s.%N) - $t0" | bc -l)
  stop_all

  printf '| %s: %s/%s/%s/%s/%s | %d s | %d s | %.1f s | %.1f s | %d / %d; %.2f | %d / %d |\n' "$label" "$table" "$stream" "$pipe" "$delivery" "$role" \
    "$critical" "$sequential" "$apply_s" "$ctl_s" "$reads" "$muts" "$per_s" "$steady_reads" "$steady_muts"
done
