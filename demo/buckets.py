"""How the demo's zoom bucket is opened to browsers: the same CORS rule and public-read policy that
the README tells users to set on AWS (a test holds the README to these)."""

from __future__ import annotations

import json
from typing import Any

ZOOM_BUCKET_CORS: dict[str, Any] = {
    "CORSRules": [
        {
            "AllowedOrigins": ["*"],
            "AllowedMethods": ["GET", "HEAD"],
            "AllowedHeaders": ["*"],  # Range among them: a TIFF's viewer reads the file in parts
            "ExposeHeaders": ["Content-Range", "Accept-Ranges", "ETag"],
            "MaxAgeSeconds": 3600,
        }
    ]
}


def public_read_policy(bucket: str) -> dict[str, Any]:
    """Anyone may GET the pyramids (and nothing else) from ``bucket``."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PublicReadForDeepZoomViewers",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
            }
        ],
    }


def open_to_browsers(s3: Any, bucket: str) -> None:
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=ZOOM_BUCKET_CORS)
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(public_read_policy(bucket)))
