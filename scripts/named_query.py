#!/usr/bin/env python3
"""Prints the SQL of named query NAME as stored in Athena workgroup WORKGROUP
(boto3; run it with the moto venv's python).

    named_query.py WORKGROUP NAME

The Glue table needs no change for Trino: the operator writes its projection
range in days, which Athena and Trino both read.
"""
import os
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


if __name__ == "__main__":
    print(stored_sql(sys.argv[1], sys.argv[2]))
