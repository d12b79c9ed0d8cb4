"""The moto server with the AWS behaviours the operator's ownership model rests on.

AWS tags a Kinesis stream given `Tags` in CreateStream, and a general purpose S3
bucket given `CreateBucketConfiguration/Tags` in CreateBucket, in the create call
itself; moto 5.2.5 drops both. Without them a crash between the create and a
separate tagging call would leave an untagged resource with the pipeline's name,
which the operator must (and does) refuse to touch. docs/aws-behaviour.md cites
the AWS references. Everything else is moto as released.

Usage: the same arguments as moto_server (`-H HOST -p PORT`).
"""

import re
import sys
import xml.etree.ElementTree as ElementTree

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

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
