"""The command line: ``python -m lambdazoom convert | backfill | demo`` (see ``--help``).

The same work as the Lambda function, from a shell: settings from the environment, read once
here (a bad one is one line, exit 2), credentials from the usual places.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import config

from .events import S3Record
from .handling import handle_record
from .jobs import Outcome


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
    parser = argparse.ArgumentParser(
        prog="python -m lambdazoom", description="LambdaZoom: Deep Zoom pyramids of images in S3, from a shell."
    )
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
    backfilling.add_argument(
        "--batch-operations", metavar="FUNCTION_ARN", help="have an S3 Batch Operations job invoke the function"
    )
    backfilling.add_argument("--role", metavar="ROLE_ARN", help="with --batch-operations: the role the job assumes")
    backfilling.add_argument(
        "--report", type=parse_s3_prefix, help="with --batch-operations: s3://BUCKET/PREFIX for manifest and report"
    )
    backfilling.add_argument("--force", action="store_true", help="convert even pyramids that are up to date")
    backfilling.add_argument("--dry-run", action="store_true", help="only list what would be converted")
    wiring = commands.add_parser("wire", help="set up a stage's queues, mapping and retries (what Zappa cannot)")
    wiring.add_argument("stage", help="a stage of zappa_settings.json with lambdazoom_wiring")
    wiring.add_argument("--settings", type=Path, default=Path("zappa_settings.json"), help="(default: %(default)s)")
    wiring.add_argument("--dry-run", action="store_true", help="only print what would change")
    redriving = commands.add_parser("redrive", help="send a stage's dead-letter messages back to its queue")
    redriving.add_argument("stage", help="a stage of zappa_settings.json with lambdazoom_wiring.queue")
    redriving.add_argument("--settings", type=Path, default=Path("zappa_settings.json"), help="(default: %(default)s)")
    demo = commands.add_parser("demo", help="convert images on a local S3 and show them in OpenSeadragon")
    demo.add_argument("images", nargs="*", type=Path, help="image files (default: a picture the demo makes)")
    demo.add_argument("--host", default="127.0.0.1", help="the viewer's address (default: 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8000, help="the viewer's port (default: 8000; 0 picks a free one)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(message)s", stream=sys.stderr
    )  # "lambdazoom" logs at LOG_LEVEL
    try:
        settings = config.from_environment()
    except config.SettingsError as error:
        print(f"lambdazoom: bad setting: {error}", file=sys.stderr)
        return 2
    logging.getLogger("lambdazoom").setLevel(settings.log_level.upper())
    if args.command == "demo":
        from demo import run_demo  # the local S3 behind it is a development dependency

        run_demo(args.images, args.host, args.port, settings)
        return 0
    if not _has_credentials():
        print(
            "no AWS credentials found: run `aws configure`, or set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY",
            file=sys.stderr,
        )
        return 2
    if args.command == "backfill":
        return _backfill(args, settings)
    if args.command in ("wire", "redrive"):
        return _wire(args)
    bucket, key = args.url
    handled = handle_record(S3Record("ObjectCreated:Put", bucket, key), settings)
    return 0 if handled.outcome != Outcome.FAILED else (2 if handled.retry else 1)


def _has_credentials() -> bool:
    import boto3

    return boto3.Session().get_credentials() is not None


def _backfill(args: argparse.Namespace, settings: config.Settings) -> int:
    """Exit status 0 when nothing failed, 1 when something did, 130 when interrupted (run it again to go on)."""
    from . import backfill
    from .batch_job import BatchJob

    bucket, prefix = args.url
    batch = None
    if args.batch_operations:
        if not (args.role and args.report):
            print(
                "lambdazoom backfill: --batch-operations needs --role ROLE_ARN and --report s3://BUCKET/PREFIX",
                file=sys.stderr,
            )
            return 2
        report_bucket, report_prefix = args.report
        batch = BatchJob(args.batch_operations, args.role, report_bucket, report_prefix or "lambdazoom-batch")
    try:
        tally = backfill.backfill(
            settings,
            bucket,
            prefix,
            workers=args.workers,
            invoke=args.invoke,
            rate=args.rate,
            force=args.force,
            dry_run=args.dry_run,
            batch=batch,
        )
    except KeyboardInterrupt:
        print("interrupted: run the same command again to go on where it stopped", file=sys.stderr)
        return 130
    print(backfill.summary(tally, invoked=bool(args.invoke or batch), dry_run=args.dry_run))
    return 1 if tally.failed else 0


def _wire(args: argparse.Namespace) -> int:
    """wire: print each change (or, with --dry-run, each it would make); redrive: how many messages went back.
    Exit 0, or 2 with a reason."""
    from .clients import session
    from .wire import Stage, redrive, wire

    try:
        stage = Stage.read(args.settings, args.stage)
        if args.command == "redrive":
            print(f"{redrive(stage, session())} messages sent back to {stage.wiring['queue']}")
            return 0
    except (OSError, ValueError) as error:
        print(f"lambdazoom {args.command}: {error}", file=sys.stderr)
        return 2
    changes = wire(stage, session(), dry_run=args.dry_run)
    print("\n".join(changes) if changes else f"{args.stage}: everything is wired already")
    return 0
