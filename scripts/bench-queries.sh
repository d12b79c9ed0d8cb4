#!/usr/bin/env bash
# The query benchmark of docs/benchmarks.md: the named queries on Trino over
# moto (tests/it/queries_trino.rs's data: 27 hours of generator orders delivered
# as the pipe and Firehose would), with and without their dt predicate: S3
# requests (through the counting proxy) and wall time; Trino start time and
# peak RSS. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/moto.sh install
scripts/trino.sh install
cargo test --test it -- --ignored --nocapture --test-threads 1 \
  queries_trino::bench_queries_with_and_without_partition_pruning
