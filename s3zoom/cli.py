"""The command line: ``python -m lambdazoom convert | backfill | wire | redrive | demo`` (or the installed
``lambdazoom``; see ``--help``).

The same work as the Lambda function, from a shell: settings from the environment, read once
here, credentials from the usual places. Every mistake is one line on stderr naming the thing and the
fix, and an exit status: 2 for a usage mistake (an option, a setting, no credentials), found before any
request is made; 1 for a failure (a bucket, object, queue or function that does not exist, an endpoint
out of reach, an image that will not convert). What a command needs is checked before it starts
(``problems.py``), through clients that give up within about half a minute.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

import config
from deepzoom.cli import OneLineParser, at_least, command_name

from .events import S3Record
from .jobs import Outcome
from .problems import NO_CREDENTIALS, Problem, one_line

if TYPE_CHECKING:
    from .wire import Stage

PROJECT = Path(__file__).resolve().parent.parent  # the checkout, for an editable install
GONE = "the object no longer exists"  # jobs.convert's reason when the object went before it could be read


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
    if key.endswith("/"):
        raise argparse.ArgumentTypeError(
            f"{url} is a folder, not an object: convert takes one image (for all of a folder: backfill {url})"
        )
    return bucket, key


def positive_number(text: str) -> float:
    """An argparse ``type``: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def port_number(text: str) -> int:
    """An argparse ``type``: a TCP port, 0 for any free one."""
    value = at_least(0)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be at most 65535 (or 0 for any free port), got {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineParser(
        prog=command_name("lambdazoom"),
        description="LambdaZoom: Deep Zoom pyramids of images in S3, from a shell.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    convert = commands.add_parser("convert", help="convert one object, as the Lambda function would")
    convert.add_argument("url", type=parse_s3_url, help="s3://BUCKET/KEY")
    backfilling = commands.add_parser("backfill", help="convert what is already in a bucket (skips what is up to date)")
    backfilling.add_argument("url", type=parse_s3_prefix, help="s3://BUCKET or s3://BUCKET/PREFIX")
    backfilling.add_argument("--workers", type=at_least(1), default=2, help="conversions at once, here (default: 2)")
    backfilling.add_argument("--invoke", metavar="FUNCTION", help="have the deployed function convert, one event each")
    backfilling.add_argument(
        "--rate", type=positive_number, default=10.0, help="with --invoke: invocations a second (default 10)"
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
    settings_help = "(default: zappa_settings.json here, else the project's)"
    wiring.add_argument("--settings", type=Path, help=settings_help)
    wiring.add_argument("--dry-run", action="store_true", help="only print what would change")
    redriving = commands.add_parser("redrive", help="send a stage's dead-letter messages back to its queue")
    redriving.add_argument("stage", help="a stage of zappa_settings.json with lambdazoom_wiring.queue")
    redriving.add_argument("--settings", type=Path, help=settings_help)
    demo = commands.add_parser("demo", help="convert images on a local S3 and show them in OpenSeadragon")
    demo.add_argument("images", nargs="*", type=Path, help="image files (default: a picture the demo makes)")
    demo.add_argument("--host", default="127.0.0.1", help="the viewer's address (default: 127.0.0.1)")
    demo.add_argument(
        "--port", type=port_number, default=8000, help="the viewer's port (default: 8000; 0 picks a free one)"
    )
    args = parser.parse_args(argv)
    if args.command == "backfill" and args.batch_operations and not (args.role and args.report):
        backfilling.error("--batch-operations needs --role ROLE_ARN and --report s3://BUCKET/PREFIX")
    return args


class _OneLine(logging.Formatter):
    """Each log record one line: the reason an error's report names, its traceback only at LOG_LEVEL=DEBUG."""

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and not logging.getLogger("lambdazoom").isEnabledFor(logging.DEBUG):
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        return super().format(record)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine("%(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])  # "lambdazoom" logs at LOG_LEVEL
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
    try:
        if args.command in ("wire", "redrive"):
            stage = _stage(args)
        if not _has_credentials():
            print(NO_CREDENTIALS, file=sys.stderr)
            return 2
        if args.command == "backfill":
            return _backfill(args, settings)
        if args.command in ("wire", "redrive"):
            return _wire(args, stage)
        return _convert(args, settings)
    except Problem as problem:
        print(f"lambdazoom {args.command}: {problem}", file=sys.stderr)
        return problem.status
    except (BotoCoreError, ClientError) as error:
        message, status = one_line(error)
        print(f"lambdazoom {args.command}: {message}", file=sys.stderr)
        return status


def _has_credentials() -> bool:
    from .clients import session

    return session().get_credentials() is not None


def _convert(args: argparse.Namespace, settings: config.Settings) -> int:
    """Exit status 0 when converted or skipped (up to date), 1 when it failed: the one line logged says why."""
    from .handling import handle_record
    from .problems import check_bucket, check_object, quick_client, zoom_bucket_missing

    bucket, key = args.url
    s3 = quick_client("s3")
    check_bucket(s3, bucket, f"no bucket {bucket!r}: check the bucket's name in s3://{bucket}/{key}")
    check_bucket(s3, settings.zoom_bucket, zoom_bucket_missing(settings.zoom_bucket))
    check_object(s3, bucket, key)
    handled = handle_record(S3Record("ObjectCreated:Put", bucket, key), settings)
    gone = handled.outcome == Outcome.SKIPPED and handled.reason == GONE  # deleted since it was checked
    return 1 if handled.outcome == Outcome.FAILED or gone else 0


def _backfill(args: argparse.Namespace, settings: config.Settings) -> int:
    """Exit status 0 when nothing failed, 1 when something did, 130 when interrupted (run it again to go on)."""
    from . import backfill
    from .batch_job import BatchJob
    from .problems import check_bucket, check_function, quick_client, zoom_bucket_missing

    bucket, prefix = args.url
    batch = None
    if args.batch_operations:
        report_bucket, report_prefix = args.report
        batch = BatchJob(args.batch_operations, args.role, report_bucket, report_prefix or "lambdazoom-batch")
    s3 = quick_client("s3")
    check_bucket(s3, bucket, f"no bucket {bucket!r}: check the bucket's name in s3://{bucket}/{prefix}")
    if not (args.force and (args.invoke or batch)):  # the up-to-date checks read it
        check_bucket(s3, settings.zoom_bucket, zoom_bucket_missing(settings.zoom_bucket))
    if batch is not None:
        check_bucket(
            s3,
            batch.report_bucket,
            f"the report bucket {batch.report_bucket!r} does not exist: create it, or name another in --report",
        )
    if args.invoke or batch:
        check_function(args.invoke or batch.function_arn)  # type: ignore[union-attr]
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


def _stage(args: argparse.Namespace) -> Stage:
    """The stage ``wire`` or ``redrive`` names, from ``--settings`` (or zappa_settings.json here, else the
    project's); a usage mistake (no such file or stage, nothing to wire) as a :class:`Problem` of status 2."""
    from .wire import Stage

    path = args.settings
    if path is None:
        here = Path("zappa_settings.json")
        path = here if here.is_file() or not (PROJECT / here.name).is_file() else PROJECT / here.name
        if not path.is_file():
            raise Problem(
                f"no zappa_settings.json in {Path.cwd()}: run it in the project's folder, or give --settings PATH", 2
            )
    elif not path.is_file():
        raise Problem(f"no such file: {path}: give --settings the path of your zappa_settings.json", 2)
    try:
        stage = Stage.read(path, args.stage)
        if args.command == "redrive" and "queue" not in stage.wiring:
            raise ValueError(f"stage {args.stage!r} has no queue to redrive (lambdazoom_wiring.queue)")
    except (OSError, ValueError, KeyError) as error:
        said = f"{path}: stage {args.stage!r} has no {error}" if isinstance(error, KeyError) else str(error)
        raise Problem(said, 2) from None
    return stage


def _wire(args: argparse.Namespace, stage: Stage) -> int:
    """wire: print each change (or, with --dry-run, each it would make); redrive: how many messages went back."""
    from .clients import session
    from .wire import redrive, wire

    if args.command == "redrive":
        print(f"{redrive(stage, session())} messages sent back to {stage.wiring['queue']}")
        return 0
    changes = wire(stage, session(), dry_run=args.dry_run)
    print("\n".join(changes) if changes else f"{args.stage}: everything is wired already")
    return 0
