"""The Lambda function: S3 events in, Deep Zoom pyramids out.

The S3 event handling is being built under issue 3; today this module only
names the entry point Zappa is configured to call.
"""

from __future__ import annotations

import logging

log = logging.getLogger("lambdazoom")


def handler(event: dict, context: object) -> None:
    """Entry point for S3 events (not yet implemented: see issue 3)."""
    raise NotImplementedError("S3 event handling arrives with issue 3")
