"""S3 event records, decoded once into plain values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, unquote_plus


@dataclass(frozen=True)
class S3Record:
    event_name: str  # e.g. "ObjectCreated:Put"
    bucket: str
    key: str  # decoded: S3 sends "a b.jpg" as "a+b.jpg"

    @property
    def created(self) -> bool:
        return self.event_name.startswith("ObjectCreated:")

    @property
    def removed(self) -> bool:
        return self.event_name.startswith("ObjectRemoved:")


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
            )
        )
    return found


def s3_event(bucket: str, key: str, event_name: str = "ObjectCreated:Put") -> dict[str, Any]:
    """A one-record event shaped as S3 sends it (the key URL-encoded, ``+`` for spaces)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": event_name,
                "s3": {
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": quote_plus(key, safe="/")},
                },
            }
        ]
    }
