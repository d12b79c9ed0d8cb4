#!/usr/bin/env bash
# Time from an outside change to its repair once its change event is in the queue, for every
# component of a pipeline: `sales-operator run --resync-period 1h` reading the queues
# `events-setup` makes, on moto behind the AWS-behaviour layer (which publishes the CloudTrail
# event of every mutating call before answering it) and a real kube-apiserver (scripts/kube-env).
# The outside changes are made by another identity (role outside-admin, session alice).
#   [ROUNDS=5] [OPERATOR_LOG=file] scripts/bench-drift.sh [BINARY]
#   (default binary: target/release/sales-operator; OPERATOR_LOG keeps the operator's log)
# Prints a markdown table: per component, the outside change and its median and max repair time.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/sales-operator}
rounds=${ROUNDS:-5}
[[ -x "$bin" ]] || { echo "build $bin first (cargo build --release)" >&2; exit 1; }

work=$(mktemp -d)
kube_bin=$(bash scripts/kube-env/build.sh 2>/dev/null | tail -1)
dir=$(bash scripts/kube-env/start.sh --watch-pid $$ "$work/kube")
export KUBECONFIG=$dir/kubeconfig PATH=$kube_bin:$PATH
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
endpoint=$(SALES_OPERATOR_STATE=$work scripts/moto.sh start "$port")
op_pid=""
cleanup() {
  [[ -n "$op_pid" ]] && kill "$op_pid" 2>/dev/null || true
  [[ -n "${OPERATOR_LOG:-}" ]] && cp "$work/operator.log" "$OPERATOR_LOG" || true
  SALES_OPERATOR_STATE=$work scripts/moto.sh stop "$port" || true
  bash scripts/kube-env/stop.sh "$dir" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
aws_env=(AWS_ENDPOINT_URL="$endpoint" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing)

kubectl apply --server-side -f crds/ >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
kubectl create namespace bench >/dev/null
queues=()
for region in eu-west-1 us-east-1; do  # the pipeline's region, and IAM's events' (us-east-1)
  env "${aws_env[@]}" "$bin" events-setup --region "$region" --queue-name bench-events >/dev/null
  queues+=(--events-queue "arn:aws:sqs:$region:123456789012:bench-events")
done
env "${aws_env[@]}" AWS_REGION=eu-west-1 "$bin" run --namespace bench --lease-namespace bench \
  --resync-period 1h "${queues[@]}" >"$work/operator.log" 2>&1 &
op_pid=$!

kubectl apply -f - >/dev/null <<'YAML'
apiVersion: sales-operator.dev/v1alpha1
kind: SalesPipeline
metadata:
  name: drift
  namespace: bench
spec:
  region: eu-west-1
  namePrefix: drift
  table:
    pointInTimeRecovery: true
  bucket:
    encryption: SSE_KMS
    kmsKeyArn: arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab
  catalog:
    database: drift_sales
    table: orders
  analytics:
    workgroup: drift-sales
  deletionPolicy: Delete
YAML
kubectl -n bench wait --for=condition=Ready sp/drift --timeout=300s >/dev/null ||
  { tail -30 "$work/operator.log" >&2; exit 1; }
"$(scripts/moto.sh venv)/bin/python" scripts/bench_drift.py "$endpoint" bench drift "$rounds" ||
  { tail -30 "$work/operator.log" >&2; exit 1; }
