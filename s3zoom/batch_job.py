"""``backfill --batch-operations``: a huge backfill handed to S3 Batch Operations, which invokes the function
once per object of a manifest, retries what fails for a while, and writes a completion report.

The manifest lists only what needs converting (the same up-to-date check as any backfill), as the CSV
Batch Operations reads (``bucket,key``, the key URL-encoded), written beside the report. The job invokes
the function with invocation schema 2.0; ``--force`` travels as the user argument ``force``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

MANIFEST_FORMAT = "S3BatchOperations_CSV_20180820"
REPORT_FORMAT = "Report_CSV_20180820"


@dataclass(frozen=True)
class BatchJob:
    """Where the job runs and reports: the function to invoke, the role Batch Operations assumes (it must
    read the manifest, invoke the function and write the report), and ``s3://BUCKET/PREFIX`` for both files."""

    function_arn: str
    role_arn: str
    report_bucket: str
    report_prefix: str = "lambdazoom-batch"


def manifest(bucket: str, keys: list[str]) -> bytes:
    return "".join(f"{bucket},{quote(key, safe='/')}\n" for key in keys).encode()


def create_job(s3: Any, control: Any, account: str, bucket: str, keys: list[str], job: BatchJob, *, force: bool) -> str:
    """Write the manifest of ``keys`` and create the job (it starts at once); its id."""
    manifest_key = f"{job.report_prefix.rstrip('/')}/manifest-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.csv"
    written = s3.put_object(Bucket=job.report_bucket, Key=manifest_key, Body=manifest(bucket, keys))
    answer = control.create_job(
        AccountId=account,
        ConfirmationRequired=False,
        Operation={
            "LambdaInvoke": {
                "FunctionArn": job.function_arn,
                "InvocationSchemaVersion": "2.0",
                "UserArguments": {"force": "true" if force else "false"},
            }
        },
        Manifest={
            "Spec": {"Format": MANIFEST_FORMAT, "Fields": ["Bucket", "Key"]},
            "Location": {
                "ObjectArn": f"arn:aws:s3:::{job.report_bucket}/{manifest_key}",
                "ETag": written["ETag"].strip('"'),
            },
        },
        Report={
            "Bucket": f"arn:aws:s3:::{job.report_bucket}",
            "Prefix": job.report_prefix.rstrip("/"),
            "Format": REPORT_FORMAT,
            "Enabled": True,
            "ReportScope": "AllTasks",
        },
        Priority=10,
        RoleArn=job.role_arn,
        ClientRequestToken=str(uuid.uuid4()),
        Description=f"LambdaZoom backfill of {len(keys)} objects of s3://{bucket}",
    )
    return answer["JobId"]
