#!/usr/bin/env python3
"""Prints the SQL of named query NAME as stored in Athena workgroup WORKGROUP
(boto3; run it with the moto venv's python). With --map-range DATABASE TABLE
instead, rewrites the Glue table's projection range from Athena's units
(YEARS/MONTHS/WEEKS) to Trino's (DAYS), never shorter, for a local Trino.

    named_query.py WORKGROUP NAME
    named_query.py --map-range DATABASE TABLE
"""
import os
import re
import sys

import boto3

REGION = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


def stored_sql(workgroup, name):
    athena = boto3.client("athena", region_name=REGION)
    ids = athena.list_named_queries(WorkGroup=workgroup)["NamedQueryIds"]
    for i in ids:
        q = athena.get_named_query(NamedQueryId=i)["NamedQuery"]
        if q["Name"] == name:
            return q["QueryString"]
    raise SystemExit(f"error: no named query {name} in workgroup {workgroup}")


def map_range(database, table):
    glue = boto3.client("glue", region_name=REGION)
    t = glue.get_table(DatabaseName=database, Name=table)["Table"]
    days = {"YEARS": 366, "MONTHS": 31, "WEEKS": 7}
    old = t["Parameters"]["projection.dt.range"]
    new = re.sub(r"NOW-(\d+)(YEARS|MONTHS|WEEKS)", lambda m: f"NOW-{int(m[1]) * days[m[2]]}DAYS", old)
    if new != old:
        t["Parameters"]["projection.dt.range"] = new
        keep = ["Name", "Description", "StorageDescriptor", "PartitionKeys", "TableType", "Parameters"]
        glue.update_table(DatabaseName=database, TableInput={k: t[k] for k in keep if k in t})
    print(f"projection.dt.range {old} -> {new}", file=sys.stderr)


if __name__ == "__main__":
    if sys.argv[1] == "--map-range":
        map_range(sys.argv[2], sys.argv[3])
    else:
        print(stored_sql(sys.argv[1], sys.argv[2]))
