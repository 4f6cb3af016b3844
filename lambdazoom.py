"""LambdaZoom: the AWS Lambda function that turns images landing in S3 into Deep Zoom pyramids.

Zappa calls :func:`handler` with each S3 event. From a shell, the same path::

    python -m lambdazoom convert s3://BUCKET/KEY
    python -m lambdazoom backfill s3://BUCKET[/PREFIX] [--workers N | --invoke FUNCTION] [--force] [--dry-run]
    python -m lambdazoom demo [IMAGE ...]    # on a local S3, with a viewer (needs requirements-dev.txt)
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from pathlib import Path
from typing import Any

import config
from s3zoom import jobs
from s3zoom.events import S3Record, s3_records

log = logging.getLogger("lambdazoom")
log.setLevel(config.LOG_LEVEL)


class RetryableFailure(RuntimeError):
    """At least one record failed for a reason that may pass (S3, network): Lambda should retry.

    Records that did convert are skipped on the retry, so only the failed work is redone.
    """


def handler(event: dict[str, Any], context: object = None) -> dict[str, int]:
    """Handle every record of an S3 event: convert created objects, remove deleted ones.

    Never lets a ``TypeError`` escape: Zappa would take it for a signature
    mismatch and call this again with fewer arguments.
    """
    try:
        records = s3_records(event)
    except Exception as error:  # noqa: BLE001 - a malformed event must not look like a signature mismatch
        raise RetryableFailure(f"unreadable event: {type(error).__name__}: {error}") from error
    if not records:
        log.info(json.dumps({"action": "ignored", "reason": "no S3 object records", "event": _describe(event)}))
    counts = {"done": 0, "skipped": 0, "failed": 0}
    errors: list[str] = []
    for record in records:
        outcome, error = handle_record(record)
        counts[outcome] += 1
        if error:
            errors.append(error)
    if errors:
        raise RetryableFailure(f"{len(errors)} of {len(records)} records failed, will retry: {'; '.join(errors)}")
    return counts


def handle_record(record: S3Record) -> tuple[str, str | None]:
    """Do one record's work; return its outcome and, for a retryable failure, why."""
    _warn_if_zoom_bucket_is_unprefixed_source(record.bucket)
    try:
        if record.created:
            report = jobs.convert(record.bucket, record.key, force=record.force)
        elif record.removed:
            report = jobs.remove(record.bucket, record.key)
        else:
            report = {"action": "ignored", "reason": f"event {record.event_name or '(none)'}", "key": record.key}
    except jobs.PermanentFailure as failure:
        log.error(json.dumps({"action": "failed", "bucket": record.bucket, "key": record.key, "reason": str(failure)}))
        return "failed", None
    except Exception as error:  # noqa: BLE001 - any other failure is retried, and named
        reason = f"s3://{record.bucket}/{record.key}: {type(error).__name__}: {error}"
        log.exception(json.dumps({"action": "error", "bucket": record.bucket, "key": record.key, "reason": reason}))
        return "failed", reason
    log.info(json.dumps(report))
    return ("skipped" if report["action"] in ("skipped", "ignored", "superseded") else "done"), None


@functools.cache
def _warn_if_zoom_bucket_is_unprefixed_source(bucket: str) -> None:
    if bucket == config.S3_ZOOM_BUCKET and not config.DEST_PREFIX:
        log.error(
            "S3_ZOOM_BUCKET %r is also the source bucket and DEST_PREFIX is empty: outputs (.dzi, _files/) are "
            "recognised by name and skipped, but set DEST_PREFIX or use a separate zoom bucket",
            bucket,
        )


def _describe(event: Any) -> str:
    if isinstance(event, dict):
        return str(event.get("Event") or event.get("eventName") or sorted(event)[:5])
    return type(event).__name__


def parse_s3_prefix(url: str) -> tuple[str, str]:
    """``s3://BUCKET[/PREFIX]`` as (bucket, prefix)."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not url.startswith("s3://") or not bucket:
        raise argparse.ArgumentTypeError(f"expected s3://BUCKET or s3://BUCKET/PREFIX, got {url!r}")
    return bucket, prefix


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://BUCKET/KEY`` as (bucket, key)."""
    bucket, _, key = url.removeprefix("s3://").partition("/")
    if not url.startswith("s3://") or not bucket or not key:
        raise argparse.ArgumentTypeError(f"expected s3://BUCKET/KEY, got {url!r}")
    return bucket, key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lambdazoom", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert", help="convert one object, as the Lambda function would")
    convert.add_argument("url", type=parse_s3_url, help="s3://BUCKET/KEY")
    backfilling = commands.add_parser("backfill", help="convert what is already in a bucket (skips what is up to date)")
    backfilling.add_argument("url", type=parse_s3_prefix, help="s3://BUCKET or s3://BUCKET/PREFIX")
    backfilling.add_argument("--workers", type=int, default=2, help="conversions at once, here (default: 2)")
    backfilling.add_argument("--invoke", metavar="FUNCTION", help="have the deployed function convert, one event each")
    backfilling.add_argument(
        "--rate", type=float, default=10.0, help="with --invoke: invocations a second (default 10)"
    )
    backfilling.add_argument("--force", action="store_true", help="convert even pyramids that are up to date")
    backfilling.add_argument("--dry-run", action="store_true", help="only list what would be converted")
    demo = commands.add_parser("demo", help="convert images on a local S3 and show them in OpenSeadragon")
    demo.add_argument("images", nargs="*", type=Path, help="image files (default: a picture the demo makes)")
    demo.add_argument("--host", default="127.0.0.1", help="the viewer's address (default: 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8000, help="the viewer's port (default: 8000; 0 picks a free one)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(message)s", stream=sys.stderr
    )  # "lambdazoom" logs at LOG_LEVEL
    if args.command == "demo":
        from demo import run_demo  # the local S3 behind it is a development dependency

        run_demo(args.images, args.host, args.port)
        return 0
    if not _has_credentials():
        print(
            "no AWS credentials found: run `aws configure`, or set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY",
            file=sys.stderr,
        )
        return 2
    if args.command == "backfill":
        return _backfill(args)
    bucket, key = args.url
    outcome, error = handle_record(S3Record("ObjectCreated:Put", bucket, key))
    return 0 if outcome != "failed" else (2 if error else 1)


def _has_credentials() -> bool:
    import boto3

    return boto3.Session().get_credentials() is not None


def _backfill(args: argparse.Namespace) -> int:
    """Exit status 0 when nothing failed, 1 when something did, 130 when interrupted (run it again to go on)."""
    from s3zoom import backfill  # a shell tool: the function itself never loads it

    bucket, prefix = args.url
    try:
        tally = backfill.backfill(
            bucket,
            prefix,
            workers=args.workers,
            invoke=args.invoke,
            rate=args.rate,
            force=args.force,
            dry_run=args.dry_run,
        )
    except KeyboardInterrupt:
        print("interrupted: run the same command again to go on where it stopped", file=sys.stderr)
        return 130
    print(backfill.summary(tally, invoked=bool(args.invoke), dry_run=args.dry_run))
    return 1 if tally.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
