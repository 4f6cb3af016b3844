"""LambdaZoom: the AWS Lambda function that turns images landing in S3 into Deep Zoom pyramids.

Lambda calls :func:`handler` (the stage's ``lambda_handler``) with each event: an S3 notification, an SQS
batch of them, an EventBridge event or an S3 Batch Operations task. The settings are read from the environment and
checked once, as this module is imported (a cold start): a bad value stops the start, naming the
variable, before any event is taken. The cold start also streams a tiny JPEG, PNG and TIFF
(:func:`self_test_streaming`), and says so loudly if it cannot. From a shell, the same path (``s3zoom/cli.py``)::

    python -m lambdazoom convert s3://BUCKET/KEY
    python -m lambdazoom backfill s3://BUCKET[/PREFIX] [--workers N | --invoke FUNCTION | --batch-operations ...]
    python -m lambdazoom wire STAGE [--dry-run]     # queues, dead letters and retries Zappa cannot set
    python -m lambdazoom redrive STAGE              # dead letters back to the queue
    python -m lambdazoom demo [IMAGE ...]    # on a local S3, with a viewer (needs requirements-dev.txt)
"""

from __future__ import annotations

import logging
from typing import Any

import config
from deepzoom import streaming
from s3zoom import metrics
from s3zoom.handling import RetryableFailure, handle_event

if __name__ == "__main__":  # the command line reads the settings itself, and reports a bad one in a line
    from s3zoom.cli import main

    raise SystemExit(main())

SETTINGS = config.from_environment()
logging.getLogger("lambdazoom").setLevel(SETTINGS.log_level.upper())


def self_test_streaming() -> None:
    """Stream a tiny JPEG, PNG and TIFF once, on a cold start (``deepzoom.streaming.self_test``). A kind that
    fails (a Pillow upgrade that changed the internals streaming relies on) is logged at error level with its
    traceback and counted in the ``StreamingSelfTestFailed`` metric; its images are then decoded whole where
    memory allows, and those that fit only streamed are retried, rather than every one failing as bad input."""
    failures = streaming.self_test()
    if failures:
        metrics.count("StreamingSelfTestFailed", len(failures))


self_test_streaming()

__all__ = ["SETTINGS", "RetryableFailure", "handler"]


def handler(event: dict[str, Any], context: object = None) -> dict[str, Any]:
    """Handle an S3 notification, an SQS batch of them, an EventBridge event from S3 or an S3 Batch
    Operations task list; raise :class:`RetryableFailure` where a retry is how the sender is told."""
    try:
        return handle_event(event, SETTINGS, context)
    finally:
        metrics.publish()  # CloudWatch metrics, one line among the logs (s3zoom/metrics.py)
