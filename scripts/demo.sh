#!/usr/bin/env bash
# The main job on a laptop: start the local AWS emulator, build the operator,
# plan and apply examples/pipeline.yaml, and show the status and every AWS
# resource it manages. Usage: scripts/demo.sh [MANIFEST]
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
bin=target/debug/sales-operator

echo "==> sales-operator plan -f $manifest"
"$bin" plan -f "$manifest"
echo
echo "==> sales-operator apply -f $manifest"
"$bin" apply -f "$manifest"
echo
echo "==> a second apply changes nothing:"
"$bin" plan -f "$manifest"
echo
echo "The emulator keeps running at $endpoint (stop it: scripts/moto.sh stop $port)."
echo "Tear the pipeline down with: AWS_ENDPOINT_URL=$endpoint $bin delete -f $manifest"
