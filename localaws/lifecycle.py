"""S3 Lifecycle expirations, played on moto, which stores lifecycle rules but never runs them.

:func:`expire` does to an object what an expiration rule does: in an unversioned bucket it deletes the
object, in a versioned one it puts a delete marker over the current version, or deletes a noncurrent
version for good. None of that is an ``ObjectRemoved`` event: S3 notifies ``s3:LifecycleExpiration:Delete``
(or ``:DeleteMarkerCreated``) instead, to the bucket's queues and topics that subscribe to it, in the
record AWS documents for it (requested by ``s3.amazonaws.com``; the object's key, sequencer and version,
no size or ETag). The server must run in this process (``LocalS3``, or ``mock_aws``): the deletion is made
in moto's own store, which S3's API cannot do without notifying ``ObjectRemoved``.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote_plus

from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.utils import iso_8601_datetime_with_milliseconds
from moto.s3 import notifications
from moto.s3.models import s3_backends

DELETE = "LifecycleExpiration:Delete"
DELETE_MARKER_CREATED = "LifecycleExpiration:DeleteMarkerCreated"


def expire(bucket_name: str, key: str, version_id: str | None = None) -> dict[str, Any]:
    """Expire ``key`` (or its noncurrent version ``version_id``) as a lifecycle rule does, and notify it
    as S3 does; the notification, as S3 would send it to a function (its ``configurationId`` aside)."""
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    bucket = backend.get_bucket(bucket_name)
    if version_id is not None:  # a noncurrent version deleted for good
        kept = [found for found in bucket.keys.getlist(key) if str(found.version_id) != version_id]
        if len(kept) == len(bucket.keys.getlist(key)):
            raise KeyError(f"{key} has no version {version_id}")
        bucket.keys.setlist(key, kept)
        event_name = DELETE
    elif bucket.is_versioned:
        version_id = backend._set_delete_marker(bucket_name, key).version_id
        event_name = DELETE_MARKER_CREATED
    else:
        bucket.keys.pop(key)
        event_name = DELETE
    configuration = bucket.notification_configuration
    event = notification(bucket_name, key, event_name, bucket.region_name, version_id=version_id)
    for destination in (configuration.queue + configuration.topic) if configuration else []:
        if destination.matches("s3:" + event_name, key):
            event["Records"][0]["s3"]["configurationId"] = destination.id
            region = destination.arn.split(":")[3]
            if destination in configuration.queue:
                notifications._send_sqs_message(DEFAULT_ACCOUNT_ID, event, destination.arn.split(":")[-1], region)
            else:
                notifications._send_sns_message(DEFAULT_ACCOUNT_ID, event, destination.arn, region)
    return event


def notification(
    bucket: str, key: str, event_name: str = DELETE, region: str = "us-east-1", *, version_id: str | None = None
) -> dict[str, Any]:
    """The notification S3 sends for a lifecycle expiration (AWS's documented example, with these values)."""
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "sequencer": secrets.token_hex(9).upper()}
    if version_id is not None:
        obj["versionId"] = version_id
    record = {
        "eventVersion": "2.3",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": iso_8601_datetime_with_milliseconds(),
        "eventName": event_name,
        "userIdentity": {"principalId": "s3.amazonaws.com"},
        "requestParameters": {"sourceIPAddress": "s3.amazonaws.com"},
        "responseElements": {"x-amz-request-id": secrets.token_hex(8).upper(), "x-amz-id-2": secrets.token_hex(24)},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "lifecycle",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "lambdazoom"}, "arn": f"arn:aws:s3:::{bucket}"},
            "object": obj,
        },
    }
    return {"Records": [record]}
