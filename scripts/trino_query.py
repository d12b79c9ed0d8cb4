#!/usr/bin/env python3
"""Runs one SQL statement on a Trino server over its REST protocol and prints
the result as an aligned table on stdout and Trino's statistics (rows, data
read, wall time) on stderr. Standard library only.

    scripts/trino_query.py URL SCHEMA [--json] < query.sql

The catalog is awsdatacatalog (Athena's name for the Glue catalog) and the
session time zone UTC, as on Athena.
"""
import json
import sys
import time
import urllib.request


def run(url, schema, sql):
    headers = {
        "X-Trino-User": "sales-operator",
        "X-Trino-Catalog": "awsdatacatalog",
        "X-Trino-Schema": schema,
        "X-Trino-Time-Zone": "UTC",
        "X-Trino-Source": "sales-operator",
    }
    started = time.monotonic()
    req = urllib.request.Request(url.rstrip("/") + "/v1/statement", data=sql.encode(), headers=headers, method="POST")
    columns, rows = None, []
    while True:
        with urllib.request.urlopen(req) as r:
            doc = json.load(r)
        if "error" in doc:
            e = doc["error"]
            raise SystemExit(f"error: trino query failed: {e.get('errorName')}: {e.get('message')}")
        if columns is None and "columns" in doc:
            columns = [c["name"] for c in doc["columns"]]
        rows.extend(doc.get("data", []))
        if "nextUri" not in doc:
            return columns or [], rows, doc.get("stats", {}), time.monotonic() - started
        req = urllib.request.Request(doc["nextUri"], headers=headers)


def human(n):
    for unit in ["B", "KiB", "MiB", "GiB"]:
        if n < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def main():
    url, schema = sys.argv[1], sys.argv[2]
    as_json = "--json" in sys.argv[3:]
    columns, rows, stats, wall = run(url, schema, sys.stdin.read())
    if as_json:
        print(json.dumps({"columns": columns, "rows": rows, "stats": stats, "wall_seconds": wall}))
        return
    text = [columns] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in text) for i in range(len(columns))]
    for n, r in enumerate(text):
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print(
        f"{len(rows)} rows; data scanned: {human(stats.get('physicalInputBytes', 0))}"
        f" in {stats.get('completedSplits', 0)} splits; {wall:.1f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
