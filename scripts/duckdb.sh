#!/usr/bin/env bash
# DuckDB (PyPI), pinned, in a venv cached outside the repo: the local SQL
# engine the Athena query tests (tests/queries_duckdb.rs) run the named
# queries on. Prints the venv's python on stdout.
#   scripts/duckdb.sh install     create the venv if missing (idempotent)
set -euo pipefail

DUCKDB_VERSION="${DUCKDB_VERSION:-2.0.0}"
CACHE="${SALES_OPERATOR_CACHE:-$HOME/.cache/sales-operator}"
VENV="$CACHE/duckdb-$DUCKDB_VERSION"

if [ ! -f "$VENV/.installed" ]; then
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "duckdb==$DUCKDB_VERSION" >&2
  touch "$VENV/.installed"
fi
echo "$VENV/bin/python"
