#!/usr/bin/env bash
# The main job on a laptop: start the local AWS emulator, build the operator,
# plan and apply examples/pipeline.yaml, and show the status and every AWS
# resource it manages; then the local sales projection: generate orders,
# deliver them to S3 as the pipe and Firehose would (stand-ins: moto runs
# neither), start Trino (the engine Athena v3 is built on) and run the
# pipeline's named queries as stored in its workgroup.
# Usage: scripts/demo.sh [MANIFEST]   (DEMO_ORDERS=300, DEMO_ANALYTICS=0 to stop after apply)
set -euo pipefail
cd "$(dirname "$0")/.."
manifest="${1:-examples/pipeline.yaml}"
port="${MOTO_PORT:-5000}"

echo "==> starting the local AWS emulator (moto) on 127.0.0.1:$port"
endpoint=$(scripts/moto.sh start "$port")
export AWS_ENDPOINT_URL="$endpoint" AWS_REGION="${AWS_REGION:-eu-west-1}"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true

echo "==> building sales-operator"
cargo build --quiet
bin="${CARGO_TARGET_DIR:-target}/debug/sales-operator"

echo "==> sales-operator plan -f $manifest"
"$bin" plan -f "$manifest"
echo
echo "==> sales-operator apply -f $manifest"
"$bin" apply -f "$manifest"
echo
echo "==> a second apply changes nothing:"
"$bin" plan -f "$manifest"
echo
if [ "${DEMO_ANALYTICS:-1}" = 1 ]; then
  status=$("$bin" apply -f "$manifest" -o json --wait 0)
  field() { python3 -c 'import json,sys; s=json.load(sys.stdin); s=s.get("status",s)
for k in sys.argv[1].split("."): s=s[k]
print(s)' "$1" <<<"$status"; }
  table=$(field table.name) database=$(field catalog.database) glue_table=$(field catalog.table)
  workgroup=$(field analytics.workgroup)
  orders="${DEMO_ORDERS:-300}"
  echo "==> sales-operator generate --table $table --count $orders (orders into DynamoDB)"
  "$bin" generate --table "$table" --count "$orders" --orders-per-second 100 --progress-interval 1h
  echo
  echo "==> stand-in for the EventBridge Pipe and Firehose (moto runs neither):"
  echo "    stream records -> the pipe's input template -> Firehose's batching, newline, GZIP, prefix -> S3"
  cargo run --quiet --example deliver_orders -- "$manifest"
  echo
  trino_port="${TRINO_PORT:-8080}"
  echo "==> starting Trino on 127.0.0.1:$trino_port (Glue and S3: the emulator)"
  moto_python="$(scripts/moto.sh venv)/bin/python"
  "$moto_python" scripts/named_query.py --map-range "$database" "$glue_table"
  trino=$(scripts/trino.sh start "$endpoint" "$trino_port")
  for q in sales_projection top_products; do
    echo
    echo "==> named query $q, as stored in workgroup $workgroup, on Trino"
    "$moto_python" scripts/named_query.py "$workgroup" "$q" | scripts/trino_query.py "$trino" "$database"
  done
  echo
  echo "Trino keeps running at $trino (stop it: scripts/trino.sh stop $trino_port)."
fi
echo "The emulator keeps running at $endpoint (stop it: scripts/moto.sh stop $port)."
echo "Tear the pipeline down with: AWS_ENDPOINT_URL=$endpoint $bin delete -f $manifest"
