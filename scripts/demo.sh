#!/usr/bin/env bash
# The main job on a laptop: start the local AWS emulator, build the operator,
# plan and apply examples/pipeline.yaml, and show the status and every AWS
# resource it manages; then the local sales projection: generate orders,
# deliver them to S3 as the pipe and Firehose would (stand-ins: moto runs
# neither), start Trino (the engine Athena v3 is built on) and run the
# pipeline's named queries as stored in its workgroup.
# Usage: scripts/demo.sh [MANIFEST]   (DEMO_ORDERS=300, DEMO_ANALYTICS=0 to stop after apply,
#                                       DEMO_TRINO=0 to stop after the data health,
#                                       MOTO_PORT=5000, TRINO_PORT=8090)
set -euo pipefail
cd "$(dirname "$0")/.."
manifest="${1:-examples/pipeline.yaml}"
port="${MOTO_PORT:-5000}"
region="${AWS_REGION:-eu-west-1}"
started=$SECONDS

echo "==> starting the local AWS emulator (moto) on 127.0.0.1:$port"
endpoint=$(scripts/moto.sh start "$port")
export AWS_ENDPOINT_URL="$endpoint" AWS_REGION="$region"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true

# cargo's output directory: a CARGO_BUILD_TARGET (CI builds for the image's target) adds a level.
target="${CARGO_TARGET_DIR:-target}"
out="$target/${CARGO_BUILD_TARGET:+$CARGO_BUILD_TARGET/}debug"
bin="$out/sales-operator"
echo "==> building sales-operator and the delivery stand-in (examples/deliver_orders.rs) in one cargo build"
echo "    (the first build compiles the AWS SDK: about 8 minutes on 2 cores; later ones take seconds)"
# cargo prints each crate it compiles (a progress bar on a terminal); elsewhere a line a minute
# also says the build is still going while a large crate compiles.
ticker=""
if [ ! -t 2 ]; then
  (m=0; while sleep 60; do m=$((m + 1)); echo "    ... still building ($m min)" >&2; done) &
  ticker=$!
fi
# One invocation: the stand-in's dev-dependencies and the binary share one feature set, so
# the AWS SDK crates are compiled once (two invocations would compile them twice).
build_status=0
cargo build --bin sales-operator --example deliver_orders || build_status=$?
if [ -n "$ticker" ]; then kill "$ticker" 2>/dev/null || true; wait "$ticker" 2>/dev/null || true; fi
[ "$build_status" = 0 ] || exit "$build_status"
echo "    built in $((SECONDS - started)) s since the start"

echo
echo "==> sales-operator plan -f $manifest"
"$bin" plan -f "$manifest"
echo
echo "==> sales-operator apply -f $manifest"
"$bin" apply -f "$manifest"
echo
echo "==> sales-operator plan -f $manifest (what a second apply would change: nothing)"
"$bin" plan -f "$manifest"
echo
if [ "${DEMO_ANALYTICS:-1}" = 1 ]; then
  echo "==> sales-operator apply -f $manifest -o json --wait 0 (the names of what it manages; changes nothing)"
  status=$("$bin" apply -f "$manifest" -o json --wait 0 2>/dev/null)
  field() { python3 -c 'import json,sys; s=json.load(sys.stdin); s=s.get("status",s)
for k in sys.argv[1].split("."): s=s[k]
print(s)' "$1" <<<"$status"; }
  table=$(field table.name) database=$(field catalog.database) workgroup=$(field analytics.workgroup)
  echo "    table $table, Glue database $database, Athena workgroup $workgroup"
  orders="${DEMO_ORDERS:-300}"
  echo
  echo "==> sales-operator generate --table $table --count $orders (orders into DynamoDB)"
  "$bin" generate --table "$table" --count "$orders" --orders-per-second 100 --progress-interval 1h
  echo
  echo "==> stand-in for the EventBridge Pipe and Firehose (moto runs neither):"
  echo "    stream records -> the pipe's input template -> Firehose's batching, newline, GZIP, prefix -> S3"
  "$out/examples/deliver_orders" "$manifest"
  echo
  echo "==> sales-operator data-health -f $manifest (the stages' CloudWatch metrics: is data flowing?)"
  "$bin" data-health -f "$manifest"
  echo
  if [ "${DEMO_TRINO:-1}" = 1 ]; then
    trino_port="${TRINO_PORT:-8090}"
    echo "==> starting Trino on 127.0.0.1:$trino_port (Glue and S3: the emulator; about 30 s, more on a busy machine)"
    moto_python="$(scripts/moto.sh venv)/bin/python"
    trino=$(scripts/trino.sh start "$endpoint" "$trino_port")
    for q in sales_projection top_products; do
      echo
      echo "==> named query $q, as stored in workgroup $workgroup, on Trino"
      "$moto_python" scripts/named_query.py "$workgroup" "$q" | scripts/trino_query.py "$trino" "$database"
    done
    echo
  fi
  echo "==> sales-operator plan -f $manifest (after the demo: still nothing to change)"
  "$bin" plan -f "$manifest"
  echo
  if [ -n "${trino:-}" ]; then
    echo "Trino keeps running at $trino; stop it with:"
    echo "  $PWD/scripts/trino.sh stop $trino_port"
  fi
fi
echo "The emulator keeps running at $endpoint; stop it with:"
echo "  $PWD/scripts/moto.sh stop $port"
echo "Tear the pipeline down (from any directory) with:"
echo "  AWS_ENDPOINT_URL=$endpoint AWS_REGION=$region AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing $(realpath "$bin") delete -f $(realpath "$manifest")"
echo "Demo done in $((SECONDS - started)) s."
