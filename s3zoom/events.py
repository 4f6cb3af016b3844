"""S3 event records, decoded once into plain values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote_plus, unquote_plus

FORCE_FIELD = "lambdazoom"  # a record field of our own: {"force": true}
# An object deleted by a request, or expired by a lifecycle rule (``LifecycleExpiration:Delete``, or
# ``LifecycleExpiration:DeleteMarkerCreated`` in a versioned bucket), which S3 never reports as ObjectRemoved.
REMOVED_EVENTS = ("ObjectRemoved:", "LifecycleExpiration:")


@dataclass(frozen=True)
class S3Record:
    event_name: str  # e.g. "ObjectCreated:Put"
    bucket: str
    key: str  # decoded: S3 sends "a b.jpg" as "a+b.jpg"
    force: bool = False  # convert even if the pyramid is up to date (set by `lambdazoom backfill --force`)

    @property
    def created(self) -> bool:
        return self.event_name.startswith("ObjectCreated:")

    @property
    def removed(self) -> bool:
        return self.event_name.startswith(REMOVED_EVENTS)


def s3_records(event: Any) -> list[S3Record]:
    """The S3 records of a Lambda event; anything else (a TestEvent, other sources) yields none."""
    if not isinstance(event, dict):
        return []
    found = []
    for record in event.get("Records") or []:
        s3 = record.get("s3") if isinstance(record, dict) else None
        if not isinstance(s3, dict):
            continue
        obj = s3.get("object") or {}
        found.append(
            S3Record(
                event_name=str(record.get("eventName", "")),
                bucket=str((s3.get("bucket") or {}).get("name", "")),
                key=unquote_plus(str(obj.get("key", ""))),
                force=isinstance(record.get(FORCE_FIELD), dict) and record[FORCE_FIELD].get("force") is True,
            )
        )
    return found


def s3_event(
    bucket: str,
    key: str,
    event_name: str = "ObjectCreated:Put",
    *,
    size: int = 0,
    etag: str = "",
    region: str = "us-east-1",
    force: bool = False,
) -> dict[str, Any]:
    """A one-record event shaped as S3 sends it (the key URL-encoded, ``+`` for spaces).

    Zappa routes it by ``s3.bucket.arn`` and reads ``s3.configurationId``, so both are always there.
    ``force`` adds LambdaZoom's own field, which S3 never sends.
    """
    record: dict[str, Any] = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "eventName": event_name,
        "userIdentity": {"principalId": "lambdazoom"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "lambdazoom",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "lambdazoom"}, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag.strip('"'), "sequencer": ""},
        },
    }
    if force:
        record[FORCE_FIELD] = {"force": True}
    return {"Records": [record]}
