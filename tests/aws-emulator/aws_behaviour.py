"""AWS's timing and refusals, put in front of moto: the AWS-behaviour layer.

moto makes every resource ACTIVE at once and every IAM role usable at once; AWS does
neither. This module wraps moto's WSGI application (`install()`), sees every request
before moto does and every answer after, and reproduces, per resource and with
configurable durations, what AWS documents (docs/aws-behaviour.md, "Timing and
refusals", cites each):

- creation windows: a DynamoDB table, Kinesis stream, pipe or Firehose stream shows
  CREATING (a pipe also UPDATING after UpdatePipe) for a while, and the calls AWS
  refuses meanwhile are refused with AWS's error;
- IAM propagation: a role is "young" for a while after it or its policies change,
  and Firehose and Glue refuse it, a pipe created (updated) with it fails;
- failed states: pipes ending CREATE_FAILED or START_FAILED, Firehose streams ending
  CREATING_FAILED;
- read-after-create: a Describe answering "not found" for a moment after the create;
- throttling: every Nth request answers the service's throttling error;
- the Firehose quota of delivery streams per region;
- STS AssumeRole as IAM decides it: refused unless the role exists in its account and
  its trust policy lets the caller assume it (ExternalId and TagSession included), with
  AWS Organizations' OrganizationAccountAccessRole in every other account; sessions
  that expire (`session_lifetime`), after which their calls answer ExpiredToken.

Configuration. A rule is a JSON object of the keys in `KEYS` (absent = 0 = off).
The default rule comes from the env var SALES_OPERATOR_AWS_BEHAVIOUR (absent: all
off, moto as released). `POST /_behaviour {"match": "<substring>", ...keys}` sets the
rule of every resource whose name contains the substring (the longest matching
substring wins, else the default rule applies); a rule is whole: keys it leaves out
are 0, not the default's. `DELETE /_behaviour` drops those runtime rules, `GET
/_behaviour` shows them. A resource keeps the rule that was in force at its create.

Everything here is state of this layer (monotonic clock); moto's own objects are only
read (the Firehose stream count), never changed.
"""

import collections
import io
import json
import os
import threading
import time
import uuid
import zlib
from urllib.parse import parse_qs

from moto.core import DEFAULT_ACCOUNT_ID

# Every key a rule may hold, with its type. Durations are seconds after the create (or
# the IAM change, or the UpdatePipe); counts are integers.
KEYS = {
    "table_creating": float,
    "table_backups_unavailable": float,
    "stream_creating": float,
    "pipe_creating": float,
    "delivery_creating": float,
    "iam_propagation": float,
    "read_after_create": float,
    "throttle_every": int,
    "delivery_limit": int,
    "pipe_create_failures": int,
    "pipe_start_failures": int,
    "delivery_create_failures": int,
    "session_lifetime": float,
}

# The calls each creation window refuses, by service (the operation names of the API).
REFUSED_WHILE_CREATING = {
    "dynamodb": {
        "UpdateTable",
        "TagResource",
        "UntagResource",
        "UpdateTimeToLive",
        "DeleteTable",
    },
    "kinesis": {
        "AddTagsToStream",
        "RemoveTagsFromStream",
        "IncreaseStreamRetentionPeriod",
        "DecreaseStreamRetentionPeriod",
        "UpdateShardCount",
        "StartStreamEncryption",
        "StopStreamEncryption",
        "UpdateStreamMode",
        "DeleteStream",
    },
    "firehose": {
        "UpdateDestination",
        "TagDeliveryStream",
        "UntagDeliveryStream",
        "StartDeliveryStreamEncryption",
        "StopDeliveryStreamEncryption",
        "DeleteDeliveryStream",
    },
    "pipes": {"UpdatePipe", "DeletePipe", "StartPipe", "StopPipe"},
}

# The create call of each tracked resource kind, and its describe calls.
CREATES = {
    "dynamodb": "CreateTable",
    "kinesis": "CreateStream",
    "pipes": "CreatePipe",
    "firehose": "CreateDeliveryStream",
}
DESCRIBES = {
    "dynamodb": {"DescribeTable"},
    "kinesis": {"DescribeStream", "DescribeStreamSummary"},
    "pipes": {"DescribePipe"},
    "firehose": {"DescribeDeliveryStream"},
}
# The answers whose status fields this layer rewrites (show_states).
SHOWN_BY = {
    "dynamodb": {"CreateTable", "DescribeTable"},
    "kinesis": {"DescribeStream", "DescribeStreamSummary", "ListStreams"},
    "pipes": {"CreatePipe", "UpdatePipe", "DescribePipe", "StartPipe", "StopPipe", "ListPipes"},
    "firehose": {"DescribeDeliveryStream"},
    "sts": {"AssumeRole"},
}
DELETES = {"DeleteTable", "DeleteStream", "DeletePipe", "DeleteDeliveryStream"}
# IAM calls after which a role is young again.
ROLE_CHANGES = {
    "CreateRole",
    "PutRolePolicy",
    "DeleteRolePolicy",
    "UpdateAssumeRolePolicy",
    "AttachRolePolicy",
    "DetachRolePolicy",
}
# The creating-window key of each service.
CREATING_KEY = {
    "dynamodb": "table_creating",
    "kinesis": "stream_creating",
    "pipes": "pipe_creating",
    "firehose": "delivery_creating",
}

# How each service names its throttling error (code, HTTP status, message).
THROTTLING = {
    "dynamodb": ("ThrottlingException", 400, "Rate of requests exceeds the allowed throughput."),
    "kinesis": ("ThrottlingException", 400, "The request was denied due to request throttling."),
    "firehose": ("ThrottlingException", 400, "The request was denied due to request throttling."),
    "glue": ("ThrottlingException", 400, "The request was denied due to request throttling."),
    "pipes": ("ThrottlingException", 429, "The request was denied due to request throttling."),
    "athena": ("TooManyRequestsException", 400, "Rate exceeded"),
    "iam": ("Throttling", 400, "Rate exceeded"),
    "sts": ("Throttling", 400, "Rate exceeded"),
    "s3": ("SlowDown", 503, "Please reduce your request rate."),
}
THROTTLING_DEFAULT = ("ThrottlingException", 400, "The request was denied due to request throttling.")

PIPE_SOURCE_ACTIONS = {":dynamodb:": "DescribeStream on DynamoDB", ":kinesis:": "DescribeStream on Kinesis"}

lock = threading.Lock()


def now():
    return time.monotonic()


# --- rules ------------------------------------------------------------------------------


def parse_rule(obj):
    """A rule from a JSON object: the keys of `KEYS`, typed; raises ValueError on others."""
    if not isinstance(obj, dict):
        raise ValueError("a rule is a JSON object")
    rule = {}
    for key, value in obj.items():
        if key not in KEYS:
            raise ValueError(f"unknown key {key!r}; known: {sorted(KEYS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{key} must be a number >= 0")
        rule[key] = KEYS[key](value)
    return rule


def default_rule():
    text = os.environ.get("SALES_OPERATOR_AWS_BEHAVIOUR", "").strip()
    return parse_rule(json.loads(text)) if text else {}


# How many CloudTrail-shaped records of the last requests the layer keeps (moto keeps no trail;
# GET /_behaviour/trail). Fields as CloudTrail's record contents name them
# (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-record-contents.html):
# userIdentity.arn is the assumed-role session ARN, userAgent the request's User-Agent header.
TRAIL_LENGTH = 20000


class State:
    """Rules, and what this layer remembers of resources and roles."""

    def __init__(self, default):
        self.default = default
        self.rules = {}  # match substring -> rule
        self.calls = {}  # "service:operation" -> requests seen (GET /_behaviour/calls)
        self.reset()

    def reset(self):
        self.resources = {}  # (service, region, name) -> Resource
        self.roles = {}  # role name -> monotonic time of its last change
        self.requests = {}  # rule key -> requests counted for throttle_every
        self.creates = {}  # (rule key, service, name) -> creates counted for *_failures
        self.sessions = {}  # access key id of an AssumeRole session -> monotonic time it expires
        self.trail = collections.deque(maxlen=TRAIL_LENGTH)  # GET /_behaviour/trail

    def rule_for(self, name):
        """(rule key, rule) for a resource name: the longest matching substring, else the default."""
        best = None
        if name:
            for match in self.rules:
                if match in name and (best is None or len(match) > len(best)):
                    best = match
        return (best, self.rules[best]) if best is not None else ("", self.default)


state = State({})


class Resource:
    """A table, stream, pipe or Firehose stream this layer saw created."""

    def __init__(self, rule, window, read_lag):
        self.rule = rule
        self.created = now()
        self.read_lag = read_lag
        # The current creating (or updating) window: start, length, state shown meanwhile.
        self.since = self.created
        self.window = window
        self.phase = "CREATING"
        # Pipes and Firehose: (state, reason) shown once the window ends, or None.
        self.failure = None
        # Pipes: whether this layer computes CurrentState (else moto's shows).
        self.governed = False

    def in_window(self):
        return now() < self.since + self.window

    def unreadable(self):
        return now() < self.created + self.read_lag


# --- requests ---------------------------------------------------------------------------


class Call:
    """One AWS request: service, operation, region, parameters, the resource name."""

    def __init__(self, service, op, region, params, name):
        self.service, self.op, self.region, self.params, self.name = service, op, region, params, name
        self.access_key = None


def last_segment(arn_or_name):
    return arn_or_name.rsplit("/", 1)[-1] if arn_or_name else None


def read_body(environ):
    """The request body, leaving an unread copy for moto."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= 0:
        return b""
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def json_params(body):
    """A JSON request body as a dict ({} when it is none, or not JSON: moto will say so)."""
    try:
        doc = json.loads(body) if body else {}
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def access_key_of(environ):
    """The access key id that signed a SigV4 request, else None."""
    try:
        return environ.get("HTTP_AUTHORIZATION", "").split("Credential=", 1)[1].split("/", 1)[0]
    except IndexError:
        return None


def credential_scope(environ):
    """(service, region) of a SigV4-signed request, else (None, None)."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    try:
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0]
        _, _, region, service, _ = scope.split("/")
        return service.lower(), region
    except (IndexError, ValueError):
        return None, None


def json_name(service, op, params):
    """The resource name of a JSON-protocol request."""
    if service == "dynamodb":
        return params.get("TableName") or last_segment(params.get("ResourceArn"))
    if service == "kinesis":
        return params.get("StreamName") or last_segment(params.get("StreamARN"))
    if service == "firehose":
        return params.get("DeliveryStreamName")
    if service == "glue":
        return params.get("CrawlerName") or params.get("Name")
    return params.get("Name")


PIPE_OPS = {"POST": "CreatePipe", "PUT": "UpdatePipe", "GET": "DescribePipe", "DELETE": "DeletePipe"}


def pipes_call(environ, body, region):
    path = environ.get("PATH_INFO", "")
    method = environ.get("REQUEST_METHOD", "GET")
    parts = [p for p in path.split("/") if p]
    params = json_params(body)
    if parts[:2] == ["v1", "pipes"] and len(parts) == 2:
        return Call("pipes", "ListPipes", region, params, None)
    if parts[:2] == ["v1", "pipes"] and len(parts) == 3:
        return Call("pipes", PIPE_OPS.get(method, method), region, params, parts[2])
    if parts[:2] == ["v1", "pipes"] and len(parts) == 4 and parts[3] in ("start", "stop"):
        return Call("pipes", "StartPipe" if parts[3] == "start" else "StopPipe", region, params, parts[2])
    if parts[:1] == ["tags"]:
        return Call("pipes", "Tags", region, params, last_segment(path))
    return Call("pipes", method, region, params, None)


def classify(environ):
    """The Call of a signed AWS request, else None (moto-api, unsigned, the layer's own route)."""
    service, region = credential_scope(environ)
    if service is None:
        return None
    target = environ.get("HTTP_X_AMZ_TARGET")
    content_type = environ.get("CONTENT_TYPE", "")
    if target and "json" in content_type:
        params = json_params(read_body(environ))
        op = target.rsplit(".", 1)[-1]
        return Call(service, op, region, params, json_name(service, op, params))
    if service == "pipes":
        return pipes_call(environ, read_body(environ), region)
    if content_type.startswith("application/x-www-form-urlencoded"):
        form = {k: v[0] for k, v in parse_qs(read_body(environ).decode()).items()}
        name = form.get("RoleName") or last_segment(form.get("RoleArn"))
        return Call(service, form.get("Action", ""), region, form, name)
    if service == "s3":
        parts = [p for p in environ.get("PATH_INFO", "").split("/") if p]
        return Call(service, environ.get("REQUEST_METHOD"), region, {}, parts[0] if parts else None)
    return Call(service, environ.get("REQUEST_METHOD"), region, {}, None)


# --- answers ----------------------------------------------------------------------------


class Answer:
    """An HTTP answer made by this layer instead of moto's."""

    def __init__(self, status, body, content_type, headers=()):
        self.status, self.body, self.content_type, self.headers = status, body, content_type, list(headers)


REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 409: "Conflict", 429: "Too Many Requests", 503: "Slow Down"}


def error(service, code, message, status=400, **fields):
    """The error `code` in the protocol of `service` (awsJson, restJson, awsQuery, restXml)."""
    request_id = str(uuid.uuid4())
    if service in ("iam", "sts"):
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return Answer(status, body.encode(), "text/xml")
    if service == "s3":
        body = f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
        return Answer(status, body.encode(), "application/xml")
    if service == "pipes":
        body = json.dumps({"message": message, **fields}).encode()
        return Answer(status, body, "application/json", [("x-amzn-ErrorType", code)])
    if service == "dynamodb":
        doc = {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}
        return Answer(status, json.dumps(doc).encode(), "application/x-amz-json-1.0")
    doc = {"__type": code, "message": message, **fields}
    return Answer(status, json.dumps(doc).encode(), "application/x-amz-json-1.1")


def not_found(call):
    """The service's "does not exist" answer (moto's own wording) for a resource not yet readable."""
    name = call.name
    if call.service == "dynamodb":
        return error("dynamodb", "ResourceNotFoundException", f"Requested resource not found: Table: {name} not found")
    if call.service == "kinesis":
        return error(
            "kinesis", "ResourceNotFoundException", f"Stream {name} under account {DEFAULT_ACCOUNT_ID} not found."
        )
    if call.service == "firehose":
        return error(
            "firehose", "ResourceNotFoundException", f"Firehose {name} under account {DEFAULT_ACCOUNT_ID} not found."
        )
    return error("pipes", "NotFoundException", f"Pipe {name} does not exist.", 404)


# --- behaviours before moto: each returns an Answer (a refusal) or None ----------------


def throttle(call):
    """throttle_every: every Nth request counted for a rule answers the throttling error."""
    key, rule = state.rule_for(call.name)
    every = rule.get("throttle_every", 0)
    if not every:
        return None
    count = state.requests.get(key, 0) + 1
    state.requests[key] = count
    if count % every:
        return None
    code, status, message = THROTTLING.get(call.service, THROTTLING_DEFAULT)
    return error(call.service, code, message, status)


def resource_of(call):
    return state.resources.get((call.service, call.region, call.name))


def creating_refusal(call):
    """*_creating: the calls AWS refuses while a table, stream, pipe or Firehose stream is CREATING."""
    if call.op not in REFUSED_WHILE_CREATING.get(call.service, ()):
        return None
    res = resource_of(call)
    if res is None or not res.in_window():
        return None
    name = call.name
    if call.service == "dynamodb":
        return error(
            "dynamodb",
            "ResourceInUseException",
            f"Attempt to change a resource which is still in use: Table is being created: {name}",
        )
    if call.service == "kinesis":
        return error(
            "kinesis",
            "ResourceInUseException",
            f"Stream {name} under account {DEFAULT_ACCOUNT_ID} is CREATING. "
            "For successful operation, the resource must be in the ACTIVE state.",
        )
    if call.service == "firehose":
        return error(
            "firehose",
            "ResourceInUseException",
            f"Firehose {name} under account {DEFAULT_ACCOUNT_ID} is in CREATING state and not available "
            "for this operation.",
        )
    return error(
        "pipes",
        "ConflictException",
        f"Pipe {name} is in {res.phase} state and cannot be changed until the operation completes.",
        409,
        resourceId=name,
        resourceType="pipe",
    )


def backups_unavailable(call):
    """table_backups_unavailable: UpdateContinuousBackups refused for a while after CreateTable.

    Also while the table is CREATING: the API reference gives UpdateContinuousBackups no
    ResourceInUseException, ContinuousBackupsUnavailableException is its "not yet" answer.
    """
    if call.service != "dynamodb" or call.op != "UpdateContinuousBackups":
        return None
    res = resource_of(call)
    if res is None:
        return None
    unavailable = max(res.rule.get("table_backups_unavailable", 0), res.rule.get("table_creating", 0))
    if now() >= res.created + unavailable:
        return None
    return error(
        "dynamodb",
        "ContinuousBackupsUnavailableException",
        f"Backups are being enabled for the table: {call.name}. Please retry later",
    )


def read_after_create(call):
    """read_after_create: the Describe calls answer "not found" for a moment after the create."""
    if call.op not in DESCRIBES.get(call.service, ()):
        return None
    res = resource_of(call)
    return not_found(call) if res is not None and res.unreadable() else None


def role_arns(value):
    """Every role ARN or name in a request's parameters (keys RoleARN, RoleArn, Role)."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("RoleARN", "RoleArn", "Role") and isinstance(item, str):
                found.append(item)
            else:
                found.extend(role_arns(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(role_arns(item))
    return found


def young_role(call):
    """The first role of the call that is still propagating, else None.

    A role is young for iam_propagation seconds after its last change (ROLE_CHANGES),
    where iam_propagation is the larger of the role name's rule and the resource name's.
    """
    resource_wait = state.rule_for(call.name)[1].get("iam_propagation", 0)
    for arn in role_arns(call.params):
        role = last_segment(arn)
        changed = state.roles.get(role)
        wait = max(resource_wait, state.rule_for(role)[1].get("iam_propagation", 0))
        if changed is not None and now() < changed + wait:
            return arn
    return None


def iam_refusal(call):
    """iam_propagation: Firehose and Glue refuse a young role in the call itself."""
    if call.service == "firehose" and call.op in ("CreateDeliveryStream", "UpdateDestination"):
        arn = young_role(call)
        if arn:
            return error(
                "firehose",
                "InvalidArgumentException",
                f"Firehose is unable to assume role {arn}. Please check the role provided.",
            )
    if call.service == "glue" and call.op in ("CreateCrawler", "UpdateCrawler"):
        if young_role(call):
            return error(
                "glue",
                "InvalidInputException",
                "Service is unable to assume provided role. Please verify role's TrustPolicy",
            )
    return None


def delivery_limit(call):
    """delivery_limit: CreateDeliveryStream refused once the region holds that many streams."""
    if call.service != "firehose" or call.op != "CreateDeliveryStream":
        return None
    limit = state.rule_for(call.name)[1].get("delivery_limit", 0)
    if not limit:
        return None
    from moto.firehose.models import firehose_backends

    held = len(firehose_backends[DEFAULT_ACCOUNT_ID][call.region].delivery_streams)
    if held < limit:
        return None
    return error(
        "firehose",
        "LimitExceededException",
        f"You have already consumed your limit of {limit} delivery streams in this account and region.",
    )


# What the operator shows for an ARN its resource has not produced yet (src/aws/mod.rs UNKNOWN).
PLACEHOLDER = "(known after apply)"


def placeholder_refusal(call):
    """Always on: AWS refuses a request naming the placeholder where an ARN belongs.

    IAM refuses such a policy as `MalformedPolicyDocument` "Resource <value> must be in ARN
    format or "*"."; the JSON services validate ARN members against their pattern and answer
    `ValidationException`. The operator must wait for the ARN instead (never send it).
    """
    text = json.dumps(call.params)
    if PLACEHOLDER not in text:
        return None
    if call.service == "iam":
        return error("iam", "MalformedPolicyDocument", f'Resource {PLACEHOLDER} must be in ARN format or "*".')
    code = "InvalidArgumentException" if call.service == "firehose" else "ValidationException"
    return error(
        call.service,
        code,
        f"1 validation error detected: Value '{PLACEHOLDER}' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: arn:.*",
    )


# --- identities: who calls, and whether they may assume a role -------------------------

# AWS Organizations creates this role in every member account it creates, trusting the
# management account (here moto's default account).
ORGANIZATION_ROLE = "OrganizationAccountAccessRole"


# CloudTrail-shaped records of the last requests (moto keeps no trail): see TRAIL_LENGTH.
def trail_record(call, environ):
    account, arn, _ = caller(call.access_key)
    return {
        "eventSource": f"{call.service}.amazonaws.com",
        "eventName": call.op,
        "awsRegion": call.region,
        "recipientAccountId": account,
        "userIdentity": {"arn": arn, "accessKeyId": call.access_key},
        "userAgent": environ.get("HTTP_USER_AGENT", ""),
        "resourceName": call.name,
    }


# --- change events: what CloudTrail delivers to EventBridge ---------------------------------
#
# AWS: with a trail logging management write events, every successful mutating API call of a
# service reaches the caller's account's default event bus as an "AWS API Call via CloudTrail"
# event (https://docs.aws.amazon.com/eventbridge/latest/userguide/event-types.html), in the
# call's region; IAM, a global service, in us-east-1. The detail is the CloudTrail record
# (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-record-contents.html);
# `requestParameters` names each field as the service's API does, first letter lowercase
# (`streamName`, `tableName`, `roleName`, S3's `bucketName`). Delivery is best effort. Moto
# emits none: this layer puts one on moto's bus for every mutating call moto answered 2xx, so
# rules and SQS targets see them as on AWS. S3 object calls are data events: none.

CHANGE_DETAIL_TYPE = "AWS API Call via CloudTrail"
CHANGE_SOURCES = ("dynamodb", "kinesis", "firehose", "pipes", "s3", "glue", "athena", "iam")
READ_PREFIXES = ("Describe", "Get", "List", "Head", "BatchGet", "Query", "Scan")
# Data events (logged only when a trail asks for them; never management events).
DATA_EVENTS = {
    "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems", "ExecuteStatement",
    "BatchExecuteStatement", "PutRecord", "PutRecords", "PutRecordBatch", "SubscribeToShard",
}
# S3 (REST): (method, sub-resource) of a bucket request -> CloudTrail's eventName.
S3_EVENTS = {
    ("PUT", ""): "CreateBucket",
    ("DELETE", ""): "DeleteBucket",
    ("PUT", "encryption"): "PutBucketEncryption",
    ("DELETE", "encryption"): "DeleteBucketEncryption",
    ("PUT", "lifecycle"): "PutBucketLifecycle",
    ("DELETE", "lifecycle"): "DeleteBucketLifecycle",
    ("PUT", "publicAccessBlock"): "PutBucketPublicAccessBlock",
    ("DELETE", "publicAccessBlock"): "DeleteBucketPublicAccessBlock",
    ("PUT", "tagging"): "PutBucketTagging",
    ("DELETE", "tagging"): "DeleteBucketTagging",
    ("PUT", "policy"): "PutBucketPolicy",
    ("DELETE", "policy"): "DeleteBucketPolicy",
}


def lower_first(key):
    return key[:1].lower() + key[1:]


def change_event_name(call, environ):
    """CloudTrail's eventName of a mutating management call, else None."""
    if call.service not in CHANGE_SOURCES:
        return None
    if call.service == "s3":
        parts = [p for p in environ.get("PATH_INFO", "").split("/") if p]
        if len(parts) != 1:
            return None  # the service root, or an object: not a bucket's management event
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        subresources = [k for k in query if (call.op, k) in S3_EVENTS] or [""]
        return S3_EVENTS.get((call.op, subresources[0]))
    if not call.op or call.op.startswith(READ_PREFIXES) or call.op in DATA_EVENTS or call.op in ("Tags", "GET"):
        return None
    return call.op


def request_parameters(call, environ):
    if call.service == "s3":
        params = {"bucketName": call.name, "Host": environ.get("HTTP_HOST", "")}
        for key in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True):
            params[key] = ""
        return params
    params = {lower_first(k): v for k, v in call.params.items() if k not in ("Action", "Version")}
    if call.service == "pipes" and call.name:
        params["name"] = call.name
    return params


def change_event(call, environ, event_name, record):
    """(account, region, PutEvents entry) of the event CloudTrail would deliver for `call`,
    whose trail record (`trail_record`) says who made it."""
    account, identity = record["recipientAccountId"], record["userIdentity"]
    region = "us-east-1" if call.service == "iam" else call.region
    detail = {
        "eventVersion": "1.09",
        "userIdentity": {
            **identity,
            "type": "AssumedRole" if ":assumed-role/" in identity["arn"] else "IAMUser",
            "accountId": account,
        },
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "eventSource": record["eventSource"],
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": environ.get("REMOTE_ADDR", ""),
        "userAgent": record["userAgent"],
        "requestParameters": request_parameters(call, environ),
        "responseElements": None,
        "requestID": str(uuid.uuid4()),
        "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }
    entry = {
        "Source": f"aws.{call.service}",
        "DetailType": CHANGE_DETAIL_TYPE,
        "Detail": json.dumps(detail),
        "EventBusName": "default",
    }
    return account, region, entry


def publish_change(call, environ, record):
    """Puts the change event of a successful mutating call on moto's default bus; best effort,
    as AWS's delivery (moto refuses an event whose rule's SQS target is gone: AWS would not)."""
    event_name = change_event_name(call, environ)
    if event_name is None:
        return
    from moto.events.models import events_backends

    account, region, entry = change_event(call, environ, event_name, record)
    try:
        events_backends[account][region].put_events([entry])
    except Exception as e:  # noqa: BLE001 - a lost event is what best effort allows
        print(f"aws_behaviour: change event {event_name} not delivered: {e}", flush=True)


def caller(access_key):
    """(account, ARN, principal ARNs) of the principal whose access key signed a request: an
    assumed-role session is its session ARN (as AWS names the caller) and, as a principal,
    its role's ARN too; any other key is moto's default user in the account moto maps the
    key to."""
    from moto.iam.models import get_account_id_from
    from moto.sts.models import sts_backends

    account = get_account_id_from(access_key or "")
    for backend in sts_backends[account].values():
        session = backend.get_assumed_role_from_access_key(access_key)
        if session is not None:
            return account, session.arn, {session.arn, session.role_arn}
    user = f"arn:aws:iam::{account}:user/moto"
    return account, user, {user}


def as_list(value):
    return value if isinstance(value, list) else [value]


def grants(statement, action, account, principals, context):
    """Whether one Allow statement of a trust policy grants `action` to the caller."""
    if statement.get("Effect") != "Allow":
        return False
    actions = [a.lower() for a in as_list(statement.get("Action", []))]
    if not ({action.lower(), "sts:*", "*"} & set(actions)):
        return False
    principal = statement.get("Principal", {})
    named = as_list(principal.get("AWS", [])) if isinstance(principal, dict) else as_list(principal)
    if not any(p == "*" or p == account or p.endswith(f":iam::{account}:root") or p in principals for p in named):
        return False
    for operator, keys in statement.get("Condition", {}).items():
        for key, wanted in keys.items():
            wanted, have = set(as_list(wanted)), context.get(key)
            if operator == "StringEquals" and key == "sts:ExternalId":
                if have not in wanted:
                    return False
            elif operator == "ForAllValues:StringEquals" and key == "aws:TagKeys":
                if not set(have or []) <= wanted:
                    return False
            else:
                return False  # a condition this layer does not evaluate never grants
    return True


def trust_refusal(call):
    """Always on: STS AssumeRole is refused (AccessDenied, 403) unless the role exists in its
    account and its trust policy grants sts:AssumeRole to the caller, with the ExternalId it
    asks for; a request with session tags needs sts:TagSession too."""
    if call.service != "sts" or call.op != "AssumeRole":
        return None
    from urllib.parse import unquote

    from moto.iam.models import iam_backends

    arn = call.params.get("RoleArn", "")
    account, caller_arn, principals = caller(call.access_key)
    parts = arn.split(":")
    target = parts[4] if len(parts) == 6 else ""

    def denied(action):
        message = f"User: {caller_arn} is not authorized to perform: {action} on resource: {arn}"
        return error("sts", "AccessDenied", message, 403)

    role = None
    if target.isdigit():
        try:
            backend = iam_backends[target][parts[1]]
        except KeyError:
            backend = None
        role = backend and next((r for r in list(backend.roles.values()) if r.arn == arn), None)
    if role is None:
        if last_segment(arn) == ORGANIZATION_ROLE and target not in ("", DEFAULT_ACCOUNT_ID) and account == DEFAULT_ACCOUNT_ID:
            return None
        return denied("sts:AssumeRole")
    try:
        doc = json.loads(unquote(role.assume_role_policy_document))
    except ValueError:
        return denied("sts:AssumeRole")
    tags = [v for k, v in call.params.items() if k.startswith("Tags.member.") and k.endswith(".Key")]
    context = {"sts:ExternalId": call.params.get("ExternalId"), "aws:TagKeys": tags}
    statements = as_list(doc.get("Statement", []))
    if not any(grants(s, "sts:AssumeRole", account, principals, context) for s in statements):
        return denied("sts:AssumeRole")
    if tags and not any(grants(s, "sts:TagSession", account, principals, context) for s in statements):
        return denied("sts:TagSession")
    return None


EXPIRED = {
    "iam": ("ExpiredToken", 403, "The security token included in the request is expired"),
    "sts": ("ExpiredToken", 403, "The security token included in the request is expired"),
    "s3": ("ExpiredToken", 400, "The provided token has expired."),
}


def expired_session(call):
    """session_lifetime: a call signed with the keys of a session past its expiry is refused."""
    expires = state.sessions.get(call.access_key)
    if expires is None or now() < expires:
        return None
    code, status, message = EXPIRED.get(
        call.service, ("ExpiredTokenException", 400, "The security token included in the request is expired")
    )
    return error(call.service, code, message, status)


def session_answer(call, body):
    """session_lifetime: AssumeRole's Expiration shortened to the rule's lifetime, and the
    session's keys remembered so that their calls expire with it."""
    lifetime = state.rule_for(call.name)[1].get("session_lifetime", 0)
    text = body.decode()
    key = text.split("<AccessKeyId>", 1)[-1].split("</AccessKeyId>", 1)[0]
    if not lifetime or "<Expiration>" not in text or not key:
        return body
    state.sessions[key] = now() + lifetime
    expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + lifetime))
    head, rest = text.split("<Expiration>", 1)
    return f"{head}<Expiration>{expiry}</Expiration>{rest.split('</Expiration>', 1)[1]}".encode()


BEFORE = [
    placeholder_refusal,
    expired_session,
    trust_refusal,
    throttle,
    creating_refusal,
    backups_unavailable,
    read_after_create,
    iam_refusal,
    delivery_limit,
]


# --- behaviours after moto answered 2xx: bookkeeping ----------------------------------


def count_create(call, rule_key):
    key = (rule_key, call.service, call.name)
    state.creates[key] = state.creates.get(key, 0) + 1
    return state.creates[key]


def pipe_outcome(call, rule, n):
    """The failed state a pipe ends in once its window ends (or None), for its n-th create."""
    arn = young_role(call)
    if arn:
        source = call.params.get("Source", "")
        action = next((a for k, a in PIPE_SOURCE_ACTIONS.items() if k in source), "the source")
        return (
            "CREATE_FAILED" if call.op == "CreatePipe" else "UPDATE_FAILED",
            "Input parameter is invalid from the request due to : "
            f"The provided customer role does not have permissions to call {action}",
        )
    if call.op != "CreatePipe":
        return None
    create_failures = rule.get("pipe_create_failures", 0)
    if n <= create_failures:
        return ("CREATE_FAILED", "Internal failure creating the pipe (pipe_create_failures of the AWS-behaviour layer)")
    if call.params.get("DesiredState", "RUNNING") == "RUNNING" and n <= create_failures + rule.get(
        "pipe_start_failures", 0
    ):
        return ("START_FAILED", "Internal failure starting the pipe (pipe_start_failures of the AWS-behaviour layer)")
    return None


def record_create(call):
    rule_key, rule = state.rule_for(call.name)
    n = count_create(call, rule_key)
    res = Resource(rule, rule.get(CREATING_KEY[call.service], 0), rule.get("read_after_create", 0))
    if call.service == "pipes":
        res.failure = pipe_outcome(call, rule, n)
        res.governed = bool(res.window or res.failure)
    if call.service == "firehose" and n <= rule.get("delivery_create_failures", 0):
        res.failure = (
            "CREATING_FAILED",
            {"Type": "UNKNOWN_ERROR", "Details": "Injected by the AWS-behaviour layer (delivery_create_failures)"},
        )
    state.resources[(call.service, call.region, call.name)] = res


def record_pipe_update(call):
    """UpdatePipe opens an UPDATING window; a young role makes it end UPDATE_FAILED."""
    rule = state.rule_for(call.name)[1]
    res = resource_of(call)
    window = rule.get("pipe_creating", 0)
    failure = pipe_outcome(call, rule, 0)
    if res is None:
        if not (window or failure):
            return
        res = Resource(rule, 0, 0)
        state.resources[(call.service, call.region, call.name)] = res
    res.since, res.window, res.phase, res.failure = now(), window, "UPDATING", failure
    res.governed = res.governed or bool(window or failure)


def record_pipe_start_stop(call):
    """StartPipe/StopPipe retry a pipe that failed to start."""
    res = resource_of(call)
    if res is not None and res.failure and res.failure[0] == "START_FAILED":
        res.failure = None


def after(call):
    """Bookkeeping once moto accepted `call`."""
    if call.op == CREATES.get(call.service):
        record_create(call)
    elif call.op in DELETES:
        state.resources.pop((call.service, call.region, call.name), None)
    elif call.service == "pipes" and call.op == "UpdatePipe":
        record_pipe_update(call)
    elif call.service == "pipes" and call.op in ("StartPipe", "StopPipe"):
        record_pipe_start_stop(call)
    elif call.service == "iam" and call.op in ROLE_CHANGES and call.name:
        state.roles[call.name] = now()
    elif call.service == "iam" and call.op == "DeleteRole":
        state.roles.pop(call.name, None)


# --- behaviours on moto's answer: the states shown ------------------------------------


def pipe_state(res, pipe):
    """CurrentState (and StateReason) of a governed pipe, from its window and outcome."""
    if res.in_window():
        pipe["CurrentState"] = res.phase
        pipe.pop("StateReason", None)
    elif res.failure:
        pipe["CurrentState"], pipe["StateReason"] = res.failure
    else:
        pipe["CurrentState"] = "STOPPED" if pipe.get("DesiredState") == "STOPPED" else "RUNNING"
        pipe.pop("StateReason", None)


def show_states(call, doc):
    """Rewrites the status fields of moto's answer to `call`; returns whether it changed any."""
    if call.service == "pipes" and call.op == "ListPipes":
        changed = False
        for pipe in doc.get("Pipes", []):
            res = state.resources.get(("pipes", call.region, pipe.get("Name")))
            if res is not None and res.governed:
                pipe_state(res, pipe)
                changed = True
        return changed
    if call.service == "kinesis" and call.op == "ListStreams":
        changed = False
        for summary in doc.get("StreamSummaries", []):
            res = state.resources.get(("kinesis", call.region, summary.get("StreamName")))
            if res is not None and res.in_window():
                summary["StreamStatus"] = "CREATING"
                changed = True
        return changed
    res = resource_of(call)
    if res is None:
        return False
    if call.service == "pipes" and call.op in ("CreatePipe", "UpdatePipe", "DescribePipe", "StartPipe", "StopPipe"):
        if res.governed:
            pipe_state(res, doc)
            return True
        return False
    if call.service == "dynamodb" and call.op in ("CreateTable", "DescribeTable") and res.in_window():
        table = doc.get("TableDescription") or doc.get("Table") or {}
        table["TableStatus"] = "CREATING"
        return True
    if call.service == "kinesis" and call.op in ("DescribeStream", "DescribeStreamSummary") and res.in_window():
        stream = doc.get("StreamDescription") or doc.get("StreamDescriptionSummary") or {}
        stream["StreamStatus"] = "CREATING"
        return True
    if call.service == "firehose" and call.op == "DescribeDeliveryStream":
        stream = doc.get("DeliveryStreamDescription", {})
        if res.in_window():
            stream["DeliveryStreamStatus"] = "CREATING"
            return True
        if res.failure:
            stream["DeliveryStreamStatus"], stream["FailureDescription"] = res.failure
            return True
    return False


# --- the route and the WSGI wrapper ---------------------------------------------------


def json_answer(status, doc):
    return Answer(status, json.dumps(doc).encode(), "application/json")


def behaviour_route(environ):
    """POST /_behaviour sets a runtime rule, DELETE drops them all, GET shows them."""
    method = environ.get("REQUEST_METHOD")
    with lock:
        if method == "DELETE":
            cleared = len(state.rules)
            for key in state.rules:
                state.requests.pop(key, None)
            state.rules.clear()
            return json_answer(200, {"cleared": cleared})
        if method == "GET":
            return json_answer(200, {"default": state.default, "rules": state.rules})
        if method != "POST":
            return json_answer(405, {"error": "POST, DELETE or GET"})
        try:
            doc = json.loads(read_body(environ) or b"{}")
            match = doc.pop("match", None) if isinstance(doc, dict) else None
            if not isinstance(match, str) or not match:
                raise ValueError('"match" must be a non-empty string')
            rule = parse_rule(doc)
        except ValueError as e:
            return json_answer(400, {"error": str(e)})
        state.rules[match] = rule
        state.requests.pop(match, None)
        for key in [k for k in state.creates if k[0] == match]:
            del state.creates[key]
        return json_answer(200, {"match": match, "rule": rule})


def respond(answer, start_response):
    headers = [("Content-Type", answer.content_type), ("Content-Length", str(len(answer.body)))]
    headers += answer.headers + [("x-amzn-RequestId", str(uuid.uuid4()))]
    start_response(f"{answer.status} {REASONS.get(answer.status, 'Error')}", headers)
    return [answer.body]


def layered(app, environ, start_response):
    """One request through this layer to moto's dispatcher `app` and back."""
    path = environ.get("PATH_INFO", "")
    if path == "/_behaviour":
        return respond(behaviour_route(environ), start_response)
    if path == "/_behaviour/calls":
        # The requests seen per operation, for the benchmarks (scripts/bench-ready.sh); DELETE resets.
        with lock:
            calls = dict(state.calls)
            if environ.get("REQUEST_METHOD") == "DELETE":
                state.calls.clear()
        return respond(json_answer(200, calls), start_response)
    if path == "/_behaviour/trail":
        # The CloudTrail-shaped records of the last requests, oldest first.
        with lock:
            records = list(state.trail)
        return respond(json_answer(200, {"Records": records}), start_response)
    if path == "/moto-api/reset":
        with lock:
            state.reset()
        return app(environ, start_response)
    call = classify(environ)
    if call is None:
        return app(environ, start_response)
    call.access_key = access_key_of(environ)
    record = trail_record(call, environ)
    with lock:
        state.trail.append(record)
        key = f"{call.service}:{call.op}"
        state.calls[key] = state.calls.get(key, 0) + 1
        for behaviour in BEFORE:
            answer = behaviour(call)
            if answer is not None:
                return respond(answer, start_response)
    if call.op not in SHOWN_BY.get(call.service, ()):
        # Nothing to rewrite: moto's answer passes as it is (streamed, headers untouched).
        seen = {}

        def forward(status, headers, exc_info=None):
            seen["status"] = status
            return start_response(status, headers, exc_info)

        result = app(environ, forward)
        if seen.get("status", "").startswith("2"):
            with lock:
                after(call)
            publish_change(call, environ, record)
        return result
    status, headers, body = called(app, environ)
    if status.startswith("2"):
        with lock:
            after(call)
            body = rewritten(call, body)
        publish_change(call, environ, record)
    start_response(status, with_length(headers, body))
    return [body]


def called(app, environ):
    """(status, headers, body) of WSGI application `app`'s whole answer to `environ`."""
    captured = {"written": []}

    def capture(status, headers, exc_info=None):
        captured["status"], captured["headers"] = status, headers
        return captured["written"].append

    result = app(environ, capture)
    body = b"".join(captured["written"]) + b"".join(result)
    if hasattr(result, "close"):
        result.close()
    return captured["status"], captured["headers"], body


def with_length(headers, body):
    """moto's headers for a rewritten `body`: its length, and DynamoDB's CRC32 of it."""
    kept = [(k, v) for k, v in headers if k.lower() not in ("content-length", "x-amz-crc32")]
    kept.append(("Content-Length", str(len(body))))
    if any(k.lower() == "x-amz-crc32" for k, _ in headers):
        kept.append(("x-amz-crc32", str(zlib.crc32(body) & 0xFFFFFFFF)))
    return kept


def rewritten(call, body):
    """moto's 2xx answer body, with the states this layer shows."""
    if call.service == "sts":
        return session_answer(call, body)
    if not body or not body.lstrip().startswith(b"{"):
        return body
    try:
        doc = json.loads(body)
    except ValueError:
        return body
    return json.dumps(doc).encode() if show_states(call, doc) else body


def install():
    """Puts the layer in front of every moto server started after this call."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    state.default = default_rule()
    dispatch = DomainDispatcherApplication.__call__

    def call(self, environ, start_response):
        return layered(lambda e, s: dispatch(self, e, s), environ, start_response)

    DomainDispatcherApplication.__call__ = call
