#!/usr/bin/env python3
"""Runs one Athena query on delivered order lines in DuckDB; prints the rows as JSON.

Usage: duckdb_query.py FIXTURE TABLE COLUMNS_JSON NOW < query.sql
  FIXTURE       newline-delimited JSON, as Firehose lands it in S3
  TABLE         the Glue table name the query's FROM uses
  COLUMNS_JSON  [[name, glue_type], ...] -- the Glue table's columns
  NOW           the timestamp `current_timestamp` means (UTC, 'YYYY-MM-DD HH:MM:SS')

The SQL is the rendered Athena text; the only changes are the mechanical
dialect mapping documented in docs/data-model.md (see ATHENA_TO_DUCKDB).
Output: {"columns": [...], "rows": [[...], ...]}, every value as text (exact
decimals stay exact), NULL as null.
"""
import json
import re
import sys

import duckdb

GLUE_TO_DUCKDB = {"string": "VARCHAR", "int": "INTEGER", "bigint": "BIGINT", "double": "DOUBLE", "timestamp": "TIMESTAMP"}


def duckdb_type(glue_type):
    if glue_type.startswith("decimal("):
        return glue_type.upper()
    return GLUE_TO_DUCKDB[glue_type]


def athena_to_duckdb(sql, now):
    # Athena (Trino) -> DuckDB, mechanical and nothing else:
    #   to_unixtime(x)     -> epoch(x)              (seconds since the epoch, double)
    #   current_timestamp  -> TIMESTAMP '<now>'     (a fixed "now", so "last N hours" is deterministic)
    sql = re.sub(r"\bto_unixtime\(", "epoch(", sql)
    sql = re.sub(r"\bcurrent_timestamp\b", f"TIMESTAMP '{now}'", sql, flags=re.IGNORECASE)
    return sql


def main():
    fixture, table, columns_json, now = sys.argv[1:5]
    columns = json.loads(columns_json)
    spec = ", ".join(f"'{name}': '{duckdb_type(t)}'" for name, t in columns)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        f"CREATE TABLE \"{table}\" AS SELECT * FROM read_json(?, format = 'newline_delimited', "
        f"columns = {{{spec}}}, timestampformat = '%Y-%m-%dT%H:%M:%S.%gZ')",
        [fixture],
    )
    cur = con.execute(athena_to_duckdb(sys.stdin.read(), now))
    names = [d[0] for d in cur.description]
    rows = [[None if v is None else str(v) for v in row] for row in cur.fetchall()]
    json.dump({"columns": names, "rows": rows}, sys.stdout)


if __name__ == "__main__":
    main()
