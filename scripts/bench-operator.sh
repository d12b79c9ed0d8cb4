#!/usr/bin/env bash
# Memory, CPU and AWS calls of `sales-operator run` holding N SalesPipelines in
# sync, against a real kube-apiserver (scripts/kube-env) and moto.
#   [RESYNC=seconds] [WINDOW=seconds] [REGIONS=K] [EVENTS=1] [IDENTITIES=K [SESSION=seconds]]
#   [DATA_HEALTH=seconds]
#     scripts/bench-operator.sh N [BINARY]
#   (default binary: target/release/sales-operator)
# The pipelines are spread round-robin over REGIONS regions (default 20; Firehose allows 50
# delivery streams per region, so at least N/50). The steady-state window lasts WINDOW seconds
# (default: one resync period).
# With EVENTS=1 the operator reads change events (docs/change-events.md): `events-setup` makes a
# queue in each region used and in us-east-1 (IAM's events), and the resync is the 1-hour
# backstop unless RESYNC says otherwise; the row then also gives the ReceiveMessage calls.
# With IDENTITIES=K the pipelines are spread over K namespaces, each with a default AwsIdentity
# whose role is in an AWS account of its own (200000000001, ...); the AWS-behaviour layer makes
# their sessions last SESSION seconds (default 60), and the row also gives the STS AssumeRole
# calls while all became Ready and during the steady-state window.
# DATA_HEALTH is --data-health-interval (default 0: off, so that rows stay comparable with the
# runs before data health; 60 is the operator's default): the reads by operation then show its
# CloudWatch GetMetricData and S3 ListObjectsV2 per pipeline (docs/data-health.md).
# Prints one markdown table row: N, RSS after all are Ready (and its anonymous / file-backed
# parts: heap vs the binary's code), peak RSS, CPU seconds of the steady-state window, AWS calls
# in it (read/mutating), and those calls scaled to an hour; then the window's reads per
# pipeline, by operation.
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
cd "$(dirname "$0")/.."
n=${1:?usage: bench-operator.sh N [BINARY]}
bin=${2:-target/release/sales-operator}
events=${EVENTS:-0}
if (( events )); then resync=${RESYNC:-3600}; else resync=${RESYNC:-300}; fi  # seconds: the operator's defaults
window=${WINDOW:-$resync}
identities=${IDENTITIES:-0}
session=${SESSION:-60}
data_health=${DATA_HEALTH:-0}
[[ -x "$bin" ]] || { echo "build $bin first (cargo build --release)" >&2; exit 1; }

bench_start
mport=$(free_tcp_port)

kubectl create namespace bench >/dev/null
watch=(--namespace bench)
namespace_of() { echo bench; }
assume_roles() { curl -s "$endpoint/_behaviour/calls" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("sts:AssumeRole", 0))'; }
if (( identities > 0 )); then
  # One account, role, namespace and default AwsIdentity per identity; the roles trust the
  # operator's account as `iam-policy --trust-policy` prints it.
  trust=$("$bin" iam-policy --trust-policy 123456789012)
  curl -fsS -X POST "$endpoint/_behaviour" -d "{\"match\": \"bench-identity\", \"session_lifetime\": $session}" >/dev/null
  for k in $(seq 1 "$identities"); do
    account=$(printf '2%011d' "$k")
    AWS_ENDPOINT_URL=$endpoint AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing TRUST=$trust \
      "$(scripts/moto.sh venv)/bin/python" - "$account" "bench-identity-$k" <<'PY'
import os, sys, boto3
account, name = sys.argv[1], sys.argv[2]
sts = boto3.client("sts", region_name="us-east-1")
c = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole", RoleSessionName="bench")["Credentials"]
iam = boto3.client("iam", region_name="us-east-1", aws_access_key_id=c["AccessKeyId"],
                   aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])
iam.create_role(RoleName=name, AssumeRolePolicyDocument=os.environ["TRUST"])
PY
    kubectl create namespace "bench-$k" >/dev/null
    printf 'apiVersion: sales-operator.dev/v1alpha1\nkind: AwsIdentity\nmetadata:\n  name: bench-%d\nspec:\n  roleArn: arn:aws:iam::%s:role/bench-identity-%d\n  default: true\n  namespaceSelector:\n    names: [bench-%d]\n' \
      "$k" "$account" "$k" "$k" | kubectl apply -f - >/dev/null
  done
  watch=()
  namespace_of() { echo "bench-$(( ($1 - 1) % identities + 1 ))"; }
fi
# Firehose allows 50 delivery streams per region (moto enforces it too): spread the pipelines.
regions=(us-east-1 eu-west-1 us-east-2 us-west-1 us-west-2 eu-west-2 eu-west-3 eu-central-1 eu-north-1 eu-south-1
  ap-south-1 ap-northeast-1 ap-northeast-2 ap-northeast-3 ap-southeast-1 ap-southeast-2 ca-central-1 sa-east-1 me-south-1 af-south-1)
regions=("${regions[@]:0:${REGIONS:-20}}")
queues=()
if (( events )); then
  # One queue per region used, and us-east-1's for IAM (regions[0]).
  for r in "${regions[@]}"; do
    AWS_ENDPOINT_URL=$endpoint AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
      "$bin" events-setup --region "$r" --queue-name bench-events >/dev/null
    queues+=(--events-queue "arn:aws:sqs:$r:123456789012:bench-events")
  done
fi
AWS_ENDPOINT_URL=$endpoint AWS_REGION=eu-west-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
  "$bin" run "${watch[@]}" "${queues[@]}" --lease-namespace bench --metrics-address "127.0.0.1:$mport" \
  --resync-period "${resync}s" --concurrency 8 --data-health-interval "${data_health}s" >"$work/operator.log" 2>&1 &
op_pid=$!

rss() { awk -v k="${1:-VmRSS}:" '$1 == k {print $2}' "/proc/$op_pid/status"; }
hwm() { awk '/VmHWM/ {print $2}' "/proc/$op_pid/status"; }
cpu() { awk '{print $14 + $15}' "/proc/$op_pid/stat"; }
calls() { curl -s "127.0.0.1:$mport/metrics" | awk -v k="$1" '/^sales_operator_aws_calls_total/ && $0 ~ "kind=\""k"\"" {s+=$NF} END {print s+0}'; }
# Per read operation, its calls in the window: "Service:Operation before after", an operation first
# called in the window counted from 0.
window_ops() { join -a2 -e0 -o 0,1.2,2.2 -j1 "$work/ops0" "$work/ops1"; }
# "Service:Operation count" per read operation, summed over outcomes (spaces in service names become _).
by_operation() { curl -s "127.0.0.1:$mport/metrics" | sed -n 's/^sales_operator_aws_calls_total{service="\([^"]*\)",operation="\([^"]*\)",kind="read".* \([0-9]*\)$/\1:\2 \3/p' | tr ' ' '_' | sed 's/_\([0-9]*\)$/ \1/' | awk '{s[$1]+=$2} END {for (k in s) print k, s[k]}' | sort; }

for i in $(seq 1 "$n"); do
  region=${regions[$(( (i - 1) % ${#regions[@]} ))]}
  printf 'apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: p%d\n  namespace: %s\nspec:\n  region: %s\n---\n' "$i" "$(namespace_of "$i")" "$region"
done >"$work/pipelines.yaml"
t0=$(date +%s)
kubectl apply -f "$work/pipelines.yaml" >/dev/null
until [[ $(kubectl get sp -A -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True) -ge $n ]]; do
  sleep 2
  (( $(date +%s) - t0 < 3600 )) || { echo "not all Ready after 1 h" >&2; tail -20 "$work/operator.log" >&2; exit 1; }
done
ready_s=$(( $(date +%s) - t0 ))
sleep 5
rss_ready=$(rss); anon=$(rss RssAnon); file=$(rss RssFile)
# The steady-state window (by default one full resync period).
a0=$(assume_roles)
s_ready=$(( a0 - identities ))  # not the script's own k calls that created the roles
r0=$(calls read); m0=$(calls mutating); c0=$(cpu); by_operation >"$work/ops0"
sleep "$window"
r1=$(calls read); m1=$(calls mutating); c1=$(cpu); by_operation >"$work/ops1"
s_window=$(( $(assume_roles) - a0 ))
tick=$(getconf CLK_TCK)
reads=$(( r1 - r0 )); muts=$(( m1 - m0 ))
printf '| %d | %d s | %.1f MiB (%.1f + %.1f) | %.1f MiB | %.2f s | %d / %d | %d |\n' "$n" "$ready_s" \
  "$(echo "$rss_ready/1024" | bc -l)" "$(echo "$anon/1024" | bc -l)" "$(echo "$file/1024" | bc -l)" \
  "$(echo "$(hwm)/1024" | bc -l)" "$(echo "($c1-$c0)/$tick" | bc -l)" \
  "$reads" "$muts" "$(( (reads + muts) * 3600 / window ))"
if (( events )); then
  receives=$(window_ops | awk '$1 == "SQS:ReceiveMessage" {print $3 - $2}')
  echo "change events: ${#regions[@]} queues, resync $resync s; in the $window s window ${receives:-0} of the reads were ReceiveMessage; sales_operator_events_up: $(curl -s "127.0.0.1:$mport/metrics" | awk '/^sales_operator_events_up/ {s+=$NF} END {print s+0}')"
fi
if (( identities > 0 )); then
  echo "identities: $identities, sessions of $session s: STS AssumeRole calls until all Ready $s_ready, in the ${resync} s window $s_window"
  echo "  (one session per identity, renewed by the SDK's credentials cache when a call needs it shortly before it expires: about $identities x $resync / $session = $(( identities * resync / session )) in the window when calls never stop, at least $identities)"
fi
if (( data_health > 0 )); then
  health=$(window_ops | awk '$1 == "CloudWatch:GetMetricData" || $1 == "S3:ListObjectsV2" {s += $3 - $2} END {print s+0}')
  echo "data health every $data_health s: $health of the reads were GetMetricData and ListObjectsV2, $(( health * 3600 / window / n )) per pipeline per hour"
fi
echo "reads per pipeline in that resync, by operation:"
window_ops |
  awk -v n="$n" '$3 > $2 {printf "  %s %.2f\n", $1, ($3 - $2) / n}'
