"""Outside changes to every component of one pipeline, each timed from the change (its event is
in the queue when the call returns: the AWS-behaviour layer publishes it before answering) to
the moment AWS shows it repaired. Driven by scripts/bench-drift.sh; prints a markdown table.

    python bench_drift.py ENDPOINT NAMESPACE PIPELINE ROUNDS
"""

import json
import statistics
import subprocess
import sys
import time

import boto3

endpoint, namespace, pipeline, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ACCOUNT = "123456789012"
POLL = 0.02
LIMIT = 60.0


def kubectl(*args):
    return subprocess.run(["kubectl", "-n", namespace, *args], check=True, capture_output=True, text=True).stdout


status = json.loads(kubectl("get", "sp", pipeline, "-o", "json"))["status"]
spec = json.loads(kubectl("get", "sp", pipeline, "-o", "json"))["spec"]
region = spec["region"]

# The outside identity: role outside-admin assumed with session name alice, as a person would.
admin = dict(endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing")
iam0 = boto3.client("iam", region_name="us-east-1", **admin)
trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                                                  "Action": "sts:AssumeRole"}]}
try:
    iam0.create_role(RoleName="outside-admin", AssumeRolePolicyDocument=json.dumps(trust))
except iam0.exceptions.EntityAlreadyExistsException:
    pass
creds = boto3.client("sts", region_name="us-east-1", **admin).assume_role(
    RoleArn=f"arn:aws:iam::{ACCOUNT}:role/outside-admin", RoleSessionName="alice")["Credentials"]
alice = dict(endpoint_url=endpoint, aws_access_key_id=creds["AccessKeyId"],
             aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])


def client(service, where=region):
    return boto3.client(service, region_name=where, **alice)


ddb, kinesis, pipes, firehose = client("dynamodb"), client("kinesis"), client("pipes"), client("firehose")
s3, glue, athena, iam = client("s3"), client("glue"), client("athena"), client("iam", "us-east-1")
table, stream = status["table"]["name"], status["stream"]["name"]
pipe, delivery, bucket = status["pipe"]["name"], status["delivery"]["name"], status["bucket"]
database, catalog_table = spec["catalog"]["database"], spec["catalog"]["table"]
workgroup = spec["analytics"]["workgroup"]
role = status["roles"]["firehose"].rsplit("/", 1)[-1]


def until(check, limit=LIMIT):
    """Seconds until `check()` holds, polling every POLL s; raises after `limit`."""
    t0 = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - t0
        except Exception:  # not there (yet): a repair recreating it
            pass
        if time.monotonic() - t0 > limit:
            raise SystemExit(f"not within {limit} s: {check.__doc__}")
        time.sleep(POLL)


def pitr():
    d = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    return d["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def retention():
    return kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]


def pipe_running():
    return pipes.describe_pipe(Name=pipe)["CurrentState"] == "RUNNING"


def delivery_active():
    return firehose.describe_delivery_stream(DeliveryStreamName=delivery)[
        "DeliveryStreamDescription"]["DeliveryStreamStatus"] == "ACTIVE"


def encrypted():
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    return rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"


def glue_table():
    return glue.get_table(DatabaseName=database, Name=catalog_table) is not None


def workgroup_enabled():
    return athena.get_work_group(WorkGroup=workgroup)["WorkGroup"]["State"] == "ENABLED"


policies = iam.list_role_policies(RoleName=role)["PolicyNames"]
hours = retention()["RetentionPeriodHours"]

# component: (what the outside change is, ready to change, change, repaired)
CHANGES = {
    "table": ("point-in-time recovery turned off", pitr,
              lambda: ddb.update_continuous_backups(
                  TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False}), pitr),
    "stream": ("retention raised by 24 h", lambda: retention()["StreamStatus"] == "ACTIVE",
               lambda: kinesis.increase_stream_retention_period(StreamName=stream, RetentionPeriodHours=hours + 24),
               lambda: retention()["RetentionPeriodHours"] == hours),
    "pipe": ("pipe stopped", pipe_running, lambda: pipes.stop_pipe(Name=pipe),
             lambda: pipes.describe_pipe(Name=pipe)["DesiredState"] == "RUNNING"),
    "delivery": ("Firehose stream deleted", delivery_active,
                 lambda: firehose.delete_delivery_stream(DeliveryStreamName=delivery),
                 lambda: firehose.describe_delivery_stream(DeliveryStreamName=delivery) is not None),
    "bucket": ("default encryption removed", encrypted, lambda: s3.delete_bucket_encryption(Bucket=bucket), encrypted),
    "catalog": ("Glue table deleted", glue_table,
                lambda: glue.delete_table(DatabaseName=database, Name=catalog_table), glue_table),
    # moto has no UpdateWorkGroup (a workgroup disabled outside is repaired by it on AWS).
    "analytics": ("workgroup deleted", workgroup_enabled,
                  lambda: athena.delete_work_group(WorkGroup=workgroup, RecursiveDeleteOption=True),
                  workgroup_enabled),
    "iam": ("Firehose role's inline policy deleted", lambda: iam.list_role_policies(RoleName=role)["PolicyNames"] == policies,
            lambda: iam.delete_role_policy(RoleName=role, PolicyName=policies[0]),
            lambda: iam.list_role_policies(RoleName=role)["PolicyNames"] == policies),
}

def pipeline_ready():
    """the pipeline Ready again (its last repair over: nothing UPDATING)"""
    conditions = json.loads(kubectl("get", "sp", pipeline, "-o", "json"))["status"].get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


took = {c: [] for c in CHANGES}
for r in range(rounds):
    for component, (what, ready, change, repaired) in CHANGES.items():
        ready.__doc__ = f"{component} ready to change"
        repaired.__doc__ = f"{component}: {what} repaired"
        # Each change to a settled pipeline: a repair that finds an upstream resource still
        # UPDATING from the last one waits for it (the operator's 5 s pace).
        until(pipeline_ready)
        until(ready)
        change()
        took[component].append(until(repaired))
        print(f"round {r + 1} {component}: {took[component][-1]:.2f} s", file=sys.stderr)

drift = json.loads(kubectl("get", "sp", pipeline, "-o", "json"))["status"].get("drift", [])
by_event = sum(1 for d in drift if d.get("foundBy") == "event" and d.get("actor", "").endswith("/alice"))
print("| component | outside change | median | max |")
print("|---|---|---|---|")
for component, (what, *_rest) in CHANGES.items():
    t = took[component]
    print(f"| {component} | {what} | {statistics.median(t):.2f} s | {max(t):.2f} s |")
every = [x for t in took.values() for x in t]
print(f"\n{len(every)} changes ({rounds} rounds); median {statistics.median(every):.2f} s, max {max(every):.2f} s; "
      f"status.drift keeps the last {len(drift)}, {by_event} of them found by an event naming alice")
