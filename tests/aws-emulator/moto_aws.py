"""The moto server with AWS behaviours that moto 5.2.5 lacks and the operator rests on.

- AWS tags a Kinesis stream given `Tags` in CreateStream, and a general purpose S3
  bucket given `CreateBucketConfiguration/Tags` in CreateBucket, in the create call
  itself; moto drops both. Without them a crash between the create and a separate
  tagging call would leave an untagged resource with the pipeline's name, which the
  operator must (and does) refuse to touch.
- Athena's UpdateNamedQuery changes a named query in place and DeleteNamedQuery
  deletes one; moto implements neither (HTML 500), so a pipeline whose queries change
  (a new buffer interval, a catalog mode switch) could never converge on it.
- Athena's DeleteWorkGroup with RecursiveDeleteOption deletes the workgroup's named
  queries; moto keeps them, and they reappear in a new workgroup of the same name.
- DynamoDB's UpdateTable turns a table's stream on again after it was turned off, with a
  new stream (a new LatestStreamArn); moto refuses ("Cannot enable stream") once a
  table ever had a stream, so a stream turned off outside could never be repaired.
- A DynamoDB stream's records have unique sequence numbers that increase within a shard
  (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_StreamRecord.html);
  moto numbers a record len(records) + start without a lock, so concurrent writes (the
  generator's) get the same number twice and GetRecords then serves the same records
  forever (the demo's stream reader never saw the end). Adding a record holds a lock.
- AWS's SDKs speak CloudWatch in Smithy RPC v2 CBOR; moto answers that path 404:
  rpc_v2_cbor.py translates to the awsJson 1.0 protocol moto serves and back.
- AWS's timing and refusals (creation windows, IAM propagation, failed states,
  read-after-create, throttling, the Firehose quota): aws_behaviour.py, the
  AWS-behaviour layer, configured by SALES_OPERATOR_AWS_BEHAVIOUR and POST /_behaviour
  (all off unless configured).

docs/aws-behaviour.md cites the AWS references. Everything else is moto as released.

Usage: the same arguments as moto_server (`-H HOST -p PORT`).
"""

import json
import re
import sys
import threading
import xml.etree.ElementTree as ElementTree

import aws_behaviour
import rpc_v2_cbor

from moto.athena.responses import AthenaResponse
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import StreamShard
from moto.kinesis.responses import KinesisResponse
from moto.s3.responses import S3Response
from moto.server import main

_create_stream = KinesisResponse.create_stream


def create_stream(self):
    result = _create_stream(self)
    tags = self._get_param("Tags")
    if tags:
        self.kinesis_backend.add_tags_to_stream(None, self._get_param("StreamName"), tags)
    return result


KinesisResponse.create_stream = create_stream

_bucket_response_put = S3Response._bucket_response_put


def _create_bucket_tags(body):
    """The `Tags` of a CreateBucketConfiguration body, as {key: value}."""
    if not body or b"CreateBucketConfiguration" not in body:
        return {}
    text = re.sub(rb'\sxmlns="[^"]*"', b"", body, count=1)
    root = ElementTree.fromstring(text)
    tags = {}
    for tag in root.findall("./Tags/Tag"):
        key, value = tag.findtext("Key"), tag.findtext("Value")
        if key is not None:
            tags[key] = value or ""
    return tags


def bucket_response_put(self, request, bucket_name, querystring):
    result = _bucket_response_put(self, request, bucket_name, querystring)
    if not querystring:
        tags = _create_bucket_tags(self.body)
        if tags:
            self.backend.put_bucket_tagging(bucket_name, tags)
    return result


S3Response._bucket_response_put = bucket_response_put


def update_named_query(self):
    """UpdateNamedQuery: Name, Description and QueryString of an existing named query."""
    query = self.athena_backend.get_named_query(self._get_param("NamedQueryId"))
    if query is None:
        return self.error("NamedQuery does not exist", 400)
    query.name = self._get_param("Name")
    query.description = self._get_param("Description") or ""
    query.query_string = self._get_param("QueryString")
    return json.dumps({})


AthenaResponse.update_named_query = update_named_query


def delete_named_query(self):
    """DeleteNamedQuery."""
    self.athena_backend.named_queries.pop(self._get_param("NamedQueryId"), None)
    return json.dumps({})


AthenaResponse.delete_named_query = delete_named_query

_delete_work_group = AthenaResponse.delete_work_group


def delete_work_group(self):
    """DeleteWorkGroup; with RecursiveDeleteOption its named queries go too."""
    name = self._get_param("WorkGroup")
    result = _delete_work_group(self)
    if self._get_param("RecursiveDeleteOption"):
        queries = self.athena_backend.named_queries
        for query_id in [i for i, q in queries.items() if q.workgroup.name == name]:
            del queries[query_id]
    return result


AthenaResponse.delete_work_group = delete_work_group

_update_table_streams = DynamoDBBackend.update_table_streams


def update_table_streams(self, table, stream_specification):
    """UpdateTable's StreamSpecification: a table whose stream is off gets a new one."""
    if not (table.stream_specification or {}).get("StreamEnabled"):
        table.latest_stream_label = None
    return _update_table_streams(self, table, stream_specification)


DynamoDBBackend.update_table_streams = update_table_streams

_stream_shard_add = StreamShard.add
_stream_shard_lock = threading.Lock()


def stream_shard_add(self, old, new):
    """One record at a time, so that each gets its own sequence number."""
    with _stream_shard_lock:
        return _stream_shard_add(self, old, new)


StreamShard.add = stream_shard_add

if __name__ == "__main__":
    aws_behaviour.install()
    rpc_v2_cbor.install()
    sys.exit(main(sys.argv[1:]))
