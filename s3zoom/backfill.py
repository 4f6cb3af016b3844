"""Give every image already in a bucket its pyramid: ``python -m lambdazoom backfill s3://BUCKET[/PREFIX]``.

Objects are listed page by page; those whose pyramid is up to date (the marker the handler itself
checks) are skipped, so a run that was interrupted picks up where it stopped. The rest are converted
here on worker processes, or handed to the deployed function as one asynchronous invocation each,
carrying the event S3 would have sent.
"""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
import signal
import sys
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from config import Settings

from . import jobs
from .batch_job import BatchJob, create_job
from .clients import session
from .events import s3_event

CHECK_THREADS = 16  # HEAD requests in flight while sorting out what is up to date


@dataclass
class Tally:
    """What happened to each object, for the progress bar and the summary."""

    converted: int = 0  # or, with --invoke, handed to the function
    skipped: int = 0  # pyramid already up to date
    ignored: int = 0  # not a source image (extension, or LambdaZoom's own output)
    failed: dict[str, str] = field(default_factory=dict)  # key -> reason

    def counts(self) -> dict[str, int]:
        return {"done": self.converted, "up to date": self.skipped, "ignored": self.ignored, "failed": len(self.failed)}


@dataclass(frozen=True)
class Listed:
    key: str
    size: int
    etag: str


def backfill(
    settings: Settings,
    bucket: str,
    prefix: str = "",
    *,
    workers: int = 2,
    invoke: str | None = None,
    rate: float = 10.0,
    force: bool = False,
    dry_run: bool = False,
    batch: BatchJob | None = None,
) -> Tally:
    """Convert (or, with ``invoke``, have the function convert; with ``batch``, have S3 Batch Operations
    invoke it) every image under ``prefix`` that needs it."""
    tally = Tally()
    listed = list(_listed(settings, bucket, prefix))
    with tqdm(total=len(listed), unit="image", disable=None, file=sys.stderr) as bar:

        def settle(key: str, outcome: str, reason: str = "") -> None:
            if outcome == "failed":
                tally.failed[key] = reason
            else:
                setattr(tally, outcome, getattr(tally, outcome) + 1)
            bar.set_postfix(tally.counts(), refresh=False)
            bar.update()

        todo = _needing_work(settings, bucket, listed, force, settle)
        if dry_run:
            for item in todo:
                print(f"would {'invoke ' + invoke + ' for' if invoke else 'convert'} s3://{bucket}/{item.key}")
                settle(item.key, "converted")
        elif batch is not None:
            _hand_to_batch_operations(settings, bucket, todo, batch, force, settle)
        elif invoke:
            _invoke_all(invoke, bucket, todo, rate, force, settle)
        else:
            _convert_all(settings, bucket, todo, workers, force, settle)
    return tally


def summary(tally: Tally, invoked: bool, dry_run: bool) -> str:
    done = "would convert" if dry_run else ("handed to the function" if invoked else "converted")
    lines = [
        f"{done}: {tally.converted}, up to date: {tally.skipped}, not images: {tally.ignored}, "
        f"failed: {len(tally.failed)}"
    ]
    lines += [f"failed: {key}: {reason}" for key, reason in sorted(tally.failed.items())]
    return "\n".join(lines)


def _listed(settings: Settings, bucket: str, prefix: str) -> Iterator[Listed]:
    pages = jobs.client(settings).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for page in pages:
        for item in page.get("Contents", []):
            yield Listed(item["Key"], item["Size"], item["ETag"])


def _needing_work(settings: Settings, bucket: str, listed: list[Listed], force: bool, settle: Any) -> list[Listed]:
    """The objects to convert; the others are settled as ignored or up to date on the way."""
    candidates = []
    for item in listed:
        if jobs.skip_reason(settings, bucket, item.key) or jobs.unconvertible_reason(settings, item.key):
            settle(item.key, "ignored")
        else:
            candidates.append(item)
    if force:
        return candidates
    todo = []
    with ThreadPoolExecutor(CHECK_THREADS, thread_name_prefix="backfill-check") as pool:
        checks = {pool.submit(jobs.is_up_to_date, settings, bucket, item.key): item for item in candidates}
        try:
            for check in as_completed(checks):
                item = checks[check]
                try:
                    current = check.result()
                except Exception as error:  # noqa: BLE001 - reported per object, the run goes on
                    settle(item.key, "failed", f"{type(error).__name__}: {error}")
                    continue
                if current:
                    settle(item.key, "skipped")
                else:
                    todo.append(item)
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)  # do not wait for thousands of HEADs
            raise
    return sorted(todo, key=lambda item: item.key)


def _convert_all(settings: Settings, bucket: str, todo: list[Listed], workers: int, force: bool, settle: Any) -> None:
    """Convert on ``workers`` processes (spawned: boto3 clients do not survive a fork), handing each
    one image at a time, so that Ctrl-C stops after the conversions in progress."""
    context = multiprocessing.get_context("spawn")
    waiting = iter(todo)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_quiet_worker) as pool:
        running: dict[Future[tuple[str, str]], str] = {}
        try:
            while True:
                for item in itertools.islice(waiting, workers - len(running)):
                    running[pool.submit(_convert_here, settings, bucket, item.key, force)] = item.key
                if not running:
                    return
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    settle(running.pop(future), *_outcome(future))
        except KeyboardInterrupt:
            for future in as_completed(running):  # let the conversions in progress finish
                settle(running[future], *_outcome(future))
            raise


def _outcome(future: Future[tuple[str, str]]) -> tuple[str, str]:
    try:
        return future.result()
    except Exception as error:  # noqa: BLE001 - a worker that died takes only its image down
        return "failed", f"{type(error).__name__}: {error}"


def _quiet_worker() -> None:
    """Workers report through their results, not one JSON line each across the progress bar; and
    Ctrl-C, which a terminal sends to them too, is the parent's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("lambdazoom").setLevel(logging.CRITICAL)


def _convert_here(settings: Settings, bucket: str, key: str, force: bool) -> tuple[str, str]:
    """One conversion in a worker process: (outcome, reason)."""
    try:
        report = jobs.convert(settings, bucket, key, force=force)
    except jobs.PermanentFailure as failure:
        return "failed", str(failure)
    except Exception as error:  # noqa: BLE001 - named in the summary; the run goes on
        return "failed", f"{type(error).__name__}: {error}"
    return ("converted" if report["action"] == jobs.Outcome.CONVERTED else "skipped"), ""


def _hand_to_batch_operations(
    settings: Settings, bucket: str, todo: list[Listed], batch: BatchJob, force: bool, settle: Any
) -> None:
    if not todo:
        return
    account = session().client("sts").get_caller_identity()["Account"]
    job = create_job(
        jobs.client(settings),
        session().client("s3control"),
        account,
        bucket,
        [item.key for item in todo],
        batch,
        force=force,
    )
    print(
        f"S3 Batch Operations job {job}: {len(todo)} objects; its report goes to s3://{batch.report_bucket}/{batch.report_prefix}"
    )
    for item in todo:
        settle(item.key, "converted")


def _invoke_all(function: str, bucket: str, todo: list[Listed], rate: float, force: bool, settle: Any) -> None:
    """One asynchronous invocation per image, at most ``rate`` a second."""
    client = session().client("lambda")
    pace = _Pace(rate)
    for item in todo:
        pace.wait()
        event = s3_event(bucket, item.key, size=item.size, etag=item.etag, region=client.meta.region_name, force=force)
        try:
            answer = client.invoke(FunctionName=function, InvocationType="Event", Payload=json.dumps(event).encode())
        except Exception as error:  # noqa: BLE001 - reported per object, the run goes on
            settle(item.key, "failed", f"invoke {function}: {type(error).__name__}: {error}")
            continue
        if answer.get("StatusCode") != 202:
            settle(item.key, "failed", f"invoke {function}: status {answer.get('StatusCode')}")
        else:
            settle(item.key, "converted")


class _Pace:
    """Returns from ``wait`` no more often than ``rate`` times a second (0: no limit)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next = time.monotonic()

    def wait(self) -> None:
        now = time.monotonic()
        if self.next > now:
            time.sleep(self.next - now)
        self.next = max(now, self.next) + self.interval
