#!/usr/bin/env python3
"""Runs one SQL statement on a Trino server over its REST protocol and prints
the result as an aligned table on stdout and Trino's statistics (rows, data
read, wall time) on stderr. Standard library only.

    scripts/trino_query.py URL SCHEMA [--json] < query.sql
    scripts/trino_query.py URL --wait-ready SECONDS

The catalog is awsdatacatalog (Athena's name for the Glue catalog) and the
session time zone UTC, as on Athena. A query Trino refuses with
NO_NODES_AVAILABLE (a single node not yet, or briefly no longer, announced)
is sent again for up to TRINO_NO_NODES_RETRY seconds (default 120).

--wait-ready waits until the server runs queries: an active node listed in
system.runtime.nodes, read by a query that answers (what a query needs, which
/v1/info's "starting": false comes before).
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request


class QueryFailed(Exception):
    def __init__(self, name, message):
        super().__init__(f"{name}: {message}")
        self.name = name


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
            raise QueryFailed(e.get("errorName"), e.get("message"))
        if columns is None and "columns" in doc:
            columns = [c["name"] for c in doc["columns"]]
        rows.extend(doc.get("data", []))
        if "nextUri" not in doc:
            return columns or [], rows, doc.get("stats", {}), time.monotonic() - started
        req = urllib.request.Request(doc["nextUri"], headers=headers)


def run_retrying(url, schema, sql):
    """run(), sending the query again while Trino has no node to run it on."""
    limit = float(os.environ.get("TRINO_NO_NODES_RETRY", "120"))
    deadline = time.monotonic() + limit
    while True:
        try:
            return run(url, schema, sql)
        except QueryFailed as e:
            if e.name != "NO_NODES_AVAILABLE" or time.monotonic() >= deadline:
                raise
            print(f"trino: {e}; sending the query again (for up to {limit:.0f} s)", file=sys.stderr)
            time.sleep(2)


def wait_ready(url, seconds):
    """Until an active node is listed by a query that answers, or `seconds` pass."""
    deadline = time.monotonic() + seconds
    said = time.monotonic()
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            _, rows, _, _ = run(url, "runtime", "SELECT count(*) FROM system.runtime.nodes WHERE state = 'active'")
            if rows and rows[0][0] >= 1:
                return True
            last = "no active node yet"
        except (QueryFailed, urllib.error.URLError, ConnectionError, OSError) as e:
            last = str(e)
        if time.monotonic() - said >= 30:
            print(f"    still waiting for Trino to run queries: {last}", file=sys.stderr)
            said = time.monotonic()
        time.sleep(0.5)
    print(f"error: trino at {url} did not run a query within {seconds} s: {last}", file=sys.stderr)
    return False


def human(n):
    for unit in ["B", "KiB", "MiB", "GiB"]:
        if n < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def main():
    if len(sys.argv) == 4 and sys.argv[2] == "--wait-ready":
        sys.exit(0 if wait_ready(sys.argv[1], float(sys.argv[3])) else 1)
    url, schema = sys.argv[1], sys.argv[2]
    as_json = "--json" in sys.argv[3:]
    try:
        columns, rows, stats, wall = run_retrying(url, schema, sys.stdin.read())
    except QueryFailed as e:
        raise SystemExit(f"error: trino query failed: {e}")
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
