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
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
cd "$(dirname "$0")/.."
bin=${1:-target/release/sales-operator}
rounds=${ROUNDS:-5}
[[ -x "$bin" ]] || { echo "build $bin first (cargo build --release)" >&2; exit 1; }

bench_start
aws_env=(AWS_ENDPOINT_URL="$endpoint" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing)

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
