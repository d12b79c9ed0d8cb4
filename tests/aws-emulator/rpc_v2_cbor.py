"""Smithy RPC v2 CBOR in front of moto.

AWS's SDKs speak CloudWatch in the Smithy RPC v2 CBOR protocol (`POST
/service/GraniteServiceVersion20100801/operation/GetMetricData`, `application/cbor`):
aws-sdk-cloudwatch since 2025, botocore's model too (its protocols list
`smithy-rpc-v2-cbor` first). moto 5.2.5 routes CloudWatch only at `/`, in the awsQuery and
awsJson 1.0 protocols, and answers the CBOR path 404. This wrapper turns such a request into
the same operation in awsJson 1.0 (`X-Amz-Target`, the body as JSON) before the
AWS-behaviour layer and moto see it, and moto's JSON answer back into CBOR, with AWS's
`smithy-protocol: rpc-v2-cbor` header and its error shape (`__type`, `message`).

The CBOR coding is botocore's own (its RPC v2 CBOR parser and serializer, the ones boto3
uses against AWS), driven by the operation's shapes from botocore's service model, so
timestamps travel as CBOR tag 1 and numbers keep their types. Protocol reference:
https://smithy.io/2.0/additional-specs/protocols/smithy-rpc-v2.html
"""

import io
import json
import re

from botocore.parsers import RpcV2CBORParser
from botocore.serialize import RpcV2CBORSerializer
from botocore.session import get_session

from aws_behaviour import called

PATH = re.compile(r"^/service/([^/]+)/operation/([^/]+)$")

# The services the operator calls that speak CBOR, by their Smithy service shape name.
SERVICES = {"GraniteServiceVersion20100801": "cloudwatch"}

_models = {}


def model(service):
    if service not in _models:
        _models[service] = get_session().get_service_model(service)
    return _models[service]


def decoded(body):
    """A CBOR request body as plain data (timestamps as epoch seconds)."""
    if not body:
        return {}
    doc = RpcV2CBORParser().parse_data_item(io.BufferedReader(io.BytesIO(body)))
    return doc if isinstance(doc, dict) else {}


def as_json(value):
    if hasattr(value, "timestamp"):
        return value.timestamp()
    raise TypeError(f"{type(value).__name__} is not JSON")


def encoded(doc, shape):
    out = bytearray()
    RpcV2CBORSerializer()._serialize_data_item(out, doc, shape)
    return bytes(out)


def error_body(status, body):
    """moto's JSON error (`__type`, `message`) as AWS's RPC v2 CBOR error body."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    code = str(doc.get("__type") or doc.get("code") or status).rsplit("#", 1)[-1]
    message = str(doc.get("message") or doc.get("Message") or body.decode(errors="replace")[:500])
    out = bytearray()
    # A two-entry map of text strings: the shape of every RPC v2 CBOR error body.
    out.append(0xA2)
    for key, value in (("__type", code), ("message", message)):
        for text in (key, value):
            raw = text.encode()
            out.extend(header(3, len(raw)))
            out.extend(raw)
    return bytes(out)


def header(major, length):
    if length < 24:
        return bytes([major << 5 | length])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if length < 1 << (8 * size):
            return bytes([major << 5 | info]) + length.to_bytes(size, "big")
    raise ValueError("too long")


def wrap(app, environ, start_response):
    """One request: translated when it is RPC v2 CBOR for a service in SERVICES."""
    found = PATH.match(environ.get("PATH_INFO", ""))
    if not found or found.group(1) not in SERVICES:
        return app(environ, start_response)
    target, op = found.groups()
    operation = model(SERVICES[target]).operation_model(op)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    doc = json.dumps(decoded(body), default=as_json).encode()
    environ = dict(environ)
    environ.update(
        {
            "PATH_INFO": "/",
            "HTTP_X_AMZ_TARGET": f"{target}.{op}",
            "CONTENT_TYPE": "application/x-amz-json-1.0",
            "CONTENT_LENGTH": str(len(doc)),
            "wsgi.input": io.BytesIO(doc),
        }
    )
    status, moto_headers, answer = called(app, environ)
    if status.startswith("2"):
        reply = json.loads(answer) if answer.strip() else {}
        shape = operation.output_shape
        out = encoded(reply, shape) if shape is not None else b"\xa0"
    else:
        out = error_body(status.split(" ", 1)[0], answer)
    headers = [
        (k, v)
        for k, v in moto_headers
        if k.lower() not in ("content-length", "content-type", "x-amz-crc32")
    ]
    headers += [
        ("Content-Type", "application/cbor"),
        ("smithy-protocol", "rpc-v2-cbor"),
        ("Content-Length", str(len(out))),
    ]
    start_response(status, headers)
    return [out]


def install():
    """Puts the translation in front of every moto server started after this call (and of
    whatever was installed before it, the AWS-behaviour layer included)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    dispatch = DomainDispatcherApplication.__call__

    def call(self, environ, start_response):
        return wrap(lambda e, s: dispatch(self, e, s), environ, start_response)

    DomainDispatcherApplication.__call__ = call
