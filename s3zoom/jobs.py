"""Turn one source object into a pyramid in the zoom bucket, or take one away.

Both are safe to repeat: S3 delivers events at least once, and Lambda retries a function that raised.
A conversion publishes its ``.dzi`` only after every tile is stored, so a viewer sees the old pyramid,
no pyramid, or the new one complete, never a mixture; and only one conversion at a time writes a
pyramid (it holds the pyramid's lease, see lease.py), publishing only if its source is still the
current version of the stem's owner (see owners.py) when every tile is stored.

A conversion, step by step: :func:`convert` plans (is there anything to do, and may this key do it),
takes the lease, :func:`_admit_from_header` judges the image by its first bytes, :func:`_fetch_and_decode`
brings it in, the old pyramid is retired and swept,
:func:`_publish` writes the tiles and, after a last look, the ``.dzi``; :func:`_converted` is the report.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

import deepzoom
from config import Settings

from . import receipt
from .clients import bucket_region, s3_client, tile_store
from .deadline import Deadline
from .keys import LONGEST_OUTPUT_SUFFIX, MAX_KEY_BYTES, PyramidKeys, extension_of, is_own_output, path_problem
from .lease import Lease
from .multipart import ReplacedMeanwhile
from .owners import owner_of, stem_owner, stem_sources
from .page import CONTENT_TYPE as PAGE_CONTENT_TYPE
from .page import viewer_page
from .scratch import NoRoom, scratch_folder
from .sink import S3Sink
from .status import CONTENT_TYPE as STATUS_CONTENT_TYPE
from .status import StatusDocument
from .zoom import ZoomBucket, head, is_current, is_foreign, key_hash, marker

log = logging.getLogger("lambdazoom")

HEADER_BYTES = 256 * 1024  # enough for a JPEG's EXIF and ICC segments or a PNG's chunks before its pixels
# A source up to this size is judged once downloaded (the same rules, by open_image): a hostile small file costs
# a download of at most this, and an honest photo one request less than a header's range and then the file.
JUDGED_AFTER_DOWNLOAD = 8 * 2**20
# Sources up to 64 MiB come in one GET, larger ones in 64 MiB ranges, 4 at a time: s3transfer's 8 MiB default
# made a 60 MB JPEG eight requests, a quarter of a TIFF conversion's.
DOWNLOAD_IN_ONE = 64 * 2**20
DOWNLOAD = TransferConfig(multipart_threshold=DOWNLOAD_IN_ONE, multipart_chunksize=DOWNLOAD_IN_ONE, max_concurrency=4)


class Outcome(StrEnum):
    """What became of an event's object: the ``action`` of its report."""

    CONVERTED = "converted"
    REMOVED = "removed"
    SKIPPED = "skipped"  # nothing to do: up to date, gone, or our own output
    SUPERSEDED = "superseded"  # the source changed while it converted: nothing published, the newer one will be
    IGNORED = "ignored"  # not an object event
    FAILED = "failed"


class PermanentFailure(Exception):
    """This object will never convert as it is: log it once, do not retry."""


def client(settings: Settings) -> Any:
    """The S3 client: the current receipt's own, which counts all the work's requests, else the shared one."""
    options = (settings.upload_concurrency + 8, settings.s3_retry_mode, settings.s3_max_attempts)
    bill = receipt.current()
    return bill.client(*options) if bill else s3_client(*options)


def skip_reason(settings: Settings, bucket: str, key: str) -> str | None:
    """Why ``key`` must not be converted or removed, if it must not; None if it is a source image."""
    if bucket == settings.zoom_bucket and is_own_output(key, settings.dest_prefix):
        return "this is LambdaZoom's own output (the zoom bucket is also the source bucket)"
    return None


def unconvertible_reason(settings: Settings, key: str) -> str | None:
    """Why a source key can never have a pyramid, if it cannot."""
    if extension_of(key) not in settings.accepted_extensions:
        return f"extension {extension_of(key) or '(none)'!r} is not in ACCEPTED_EXTENSIONS"
    name = PyramidKeys.for_source(key, settings.dest_prefix).name
    if problem := path_problem(name):
        return f"key has {problem}, which its pyramid's keys cannot carry; rename the object"
    longest = len(name.encode()) + LONGEST_OUTPUT_SUFFIX
    if longest > MAX_KEY_BYTES:
        return f"its pyramid's keys would be up to {longest} bytes long, over S3's {MAX_KEY_BYTES}; shorten the key"
    return None


def convert(
    settings: Settings, bucket: str, key: str, *, force: bool = False, deadline: Deadline = Deadline()
) -> dict[str, Any]:
    """Convert ``s3://bucket/key``; return the report that is logged as one JSON line.

    An up-to-date pyramid is left alone unless ``force``. Raises :class:`PermanentFailure` for input
    that will never convert (or a key whose stem another source owns), and lets S3 and network errors
    through so that Lambda retries; stops with :class:`OutOfTime` where ``deadline`` leaves no time.
    """
    report: dict[str, Any] = {"bucket": bucket, "key": key}
    if reason := skip_reason(settings, bucket, key):
        return {"action": Outcome.SKIPPED, **report, "reason": reason}
    if reason := unconvertible_reason(settings, key):
        raise PermanentFailure(reason)
    if bucket == settings.zoom_bucket and not settings.dest_prefix and "tiff" in settings.output:
        raise PermanentFailure(  # a.jpg's a.tif would be a source too, and the source a.tif its own output
            "OUTPUT includes tiff and the zoom bucket is the source bucket: set DEST_PREFIX to keep the .tif "
            "files apart from the sources"
        )
    s3 = client(settings)
    zoom = ZoomBucket(s3, settings)
    keys = PyramidKeys.for_source(key, settings.dest_prefix)
    source, present = _planned_source(settings, s3, bucket, key), zoom.siblings(keys)
    if source is None:
        return {"action": Outcome.SKIPPED, **report, "reason": "the object no longer exists"}
    heads = _Heads(zoom, present)
    if not force and is_current(heads.of(keys.published(settings.output)), marker(key, source, settings)):
        return {"action": Outcome.SKIPPED, **report, "reason": "pyramid already up to date"}  # a redelivery
    with zoom.lease(keys, key, deadline) as lease:
        if lease.waited:  # another conversion held it: what it did changes the plan
            source, present = _planned_source(settings, s3, bucket, key), zoom.siblings(keys)
            if source is None:
                return {"action": Outcome.SKIPPED, **report, "reason": "the object no longer exists"}
            heads = _Heads(zoom, present)
        descriptor, tiff = heads.of(keys.descriptor), heads.of(keys.tiff)
        _refuse_foreign_pyramid(zoom, keys, descriptor, tiff, listed := zoom.folder_files(keys, present))
        published = descriptor if "dzi" in settings.output else tiff
        if not force and is_current(published, marker(key, source, settings)):
            return {"action": Outcome.SKIPPED, **report, "reason": "pyramid already up to date"}
        status = _status_document(settings, zoom, keys, bucket, key, source, lease, present)
        try:
            zoom_now = _ZoomNow(present, descriptor, tiff, listed)
            return _convert_held(settings, zoom, keys, bucket, key, source, lease, status, report, zoom_now)
        except PermanentFailure as failure:
            status.failed(str(failure))  # the one-line reason of the log line, for the web app that waits
            raise


class _Heads:
    """The HEADs of a plan's siblings, each read once and only where the siblings' listing shows it."""

    def __init__(self, zoom: ZoomBucket, present: dict[str, dict[str, Any]]) -> None:
        self.zoom, self.present = zoom, present
        self._read: dict[str, dict[str, Any] | None] = {}

    def of(self, key: str) -> dict[str, Any] | None:
        if key not in self.present:
            return None
        if key not in self._read:
            self._read[key] = self.zoom.head(key)
        return self._read[key]


@dataclass(frozen=True)
class _ZoomNow:
    """The pyramid in the zoom bucket as the plan found it: its siblings listed, its ``.dzi`` and ``.tif`` read,
    its folders listed."""

    present: dict[str, dict[str, Any]]
    descriptor: dict[str, Any] | None
    tiff: dict[str, Any] | None
    listed: list[str]


def _convert_held(
    settings: Settings,
    zoom: ZoomBucket,
    keys: PyramidKeys,
    bucket: str,
    key: str,
    source: dict[str, Any],
    lease: Lease,
    status: StatusDocument,
    report: dict[str, Any],
    now: _ZoomNow,
) -> dict[str, Any]:
    """The conversion proper, once its lease is held and its plan says there is work: judge, download,
    retire the old pyramid, sweep, publish; the report."""
    present, descriptor, tiff, listed = now.present, now.descriptor, now.tiff, now.listed
    timings: dict[str, float] = {}
    try:
        _admit_from_header(settings, zoom.s3, bucket, key, source)
        with scratch_folder(settings.tmp_dir, source["ContentLength"]) as folder:
            image, source = _fetch_and_decode(settings, zoom.s3, bucket, key, source, folder, timings)
            status.document["source"]["version"] = source["VersionId"]
            preview = _publish_preview(
                settings, zoom, keys, image, folder, marker(key, source, settings), lease, present
            )
            if descriptor is not None or listed:  # an earlier pyramid's files go next: only by the lease's holder
                lease.confirm()  # (and each batch of deletions checks the lease again)
            if descriptor is not None:  # a different source or settings: no viewer may pair them with new tiles
                zoom.retire(keys)  # (a .tif is not retired: the new one replaces it whole when it is done)
            # With no descriptor up, files of an earlier pyramid that the new one will not overwrite can go
            # now, before the new descriptor marks the work done: a retry after a failure here sweeps again.
            iiif = settings.iiif_for(keys.name)
            orphans = zoom.sweep(keys, image.size, settings.tiles, iiif.tile_size if iiif else None, listed, present)
            seen = {keys.tiff: tiff["ETag"]} if tiff is not None else {}
            status.expect(deepzoom.tile_total(image.size, settings.tiles, settings.output, iiif))
            stats = _publish(settings, zoom, bucket, key, source, keys, image, lease, seen, present, status, timings)
    except NoRoom as error:
        if error.ever:
            raise RuntimeError(str(error)) from None  # other folders fill the space now: a retry may fit
        raise PermanentFailure(str(error)) from None
    except _Superseded as superseded:
        withdrawn = zoom.withdraw(keys) if superseded.wrote else 0
        return {"action": Outcome.SUPERSEDED, **report, "reason": f"{superseded} ({withdrawn} tiles withdrawn)"}
    done = _converted(report, settings, source, image.decoding, keys, stats, orphans, timings)
    outputs = {name: done[name] for name in ("descriptor", "tiff", "iiif") if name in done}
    outputs |= {"page": keys.page} if settings.viewer_pages else {}
    outputs |= {"preview": keys.preview} if preview else {}
    bill = receipt.current()
    status.done(outputs, stats.bytes if "dzi" in settings.output else stats.tiff_bytes, bill.fields() if bill else {})
    return done | ({"preview": keys.preview} if preview else {})


def _status_document(
    settings: Settings,
    zoom: ZoomBucket,
    keys: PyramidKeys,
    bucket: str,
    key: str,
    source: dict[str, Any],
    lease: Lease,
    present: dict[str, dict[str, Any]],
) -> StatusDocument:
    """The pyramid's status document, written by this lease's holder with the pyramid's markers (the source's
    version among them, once the download has named it)."""

    def put(document: dict[str, Any], body: bytes) -> None:
        lease.check()
        described = {"ETag": document["source"]["etag"], "VersionId": document["source"]["version"]}
        zoom.s3.put_object(
            Bucket=zoom.name,
            Key=keys.status,
            Body=body,
            ContentType=STATUS_CONTENT_TYPE,
            CacheControl=settings.index_cache_control or "no-cache",
            Metadata=marker(key, described, settings),
        )

    def previous() -> dict[str, Any] | None:
        """The document an earlier conversion left, if there is one (read only when it might say the same)."""
        if keys.status not in present:
            return None
        return json.loads(zoom.s3.get_object(Bucket=zoom.name, Key=keys.status)["Body"].read())

    described = {"bucket": bucket, "key": key, "etag": source["ETag"].strip('"'), "version": ""}
    return StatusDocument(put, described | {"size": source["ContentLength"]}, previous)


def _publish_preview(
    settings: Settings,
    zoom: ZoomBucket,
    keys: PyramidKeys,
    image: deepzoom.SourceImage,
    folder: Path,
    metadata: dict[str, str],
    lease: Lease,
    present: dict[str, dict[str, Any]],
) -> bool:
    """``STEM.preview.jpg`` within seconds, where a reduced decode is cheap and the image is larger than a
    preview (deepzoom/preview.py); an earlier one goes where none is made. True if one was published."""
    made = deepzoom.preview(next(folder.glob("source.*"))) if max(image.size) > deepzoom.PREVIEW_SIDE else None
    if made is None:
        if keys.preview in present:
            zoom.delete(zoom.ours([keys.preview]))
        return False
    lease.check()
    zoom.s3.put_object(
        Bucket=zoom.name,
        Key=keys.preview,
        Body=made,
        ContentType="image/jpeg",
        CacheControl=settings.index_cache_control or "no-cache",
        Metadata=metadata,
    )
    return True


def remove(settings: Settings, bucket: str, key: str, *, deadline: Deadline = Deadline()) -> dict[str, Any]:
    """Delete the pyramid of a removed source: the ``.dzi`` first, then every tile.

    Only a pyramid this very key made: deleting ``a.xmp``, or ``a.png`` when ``a.jpg`` made ``a.dzi``,
    leaves ``a.dzi`` alone. When the owner goes and another source with its stem remains, that one is
    converted (the stem's rule, see owners.py, chooses it).
    """
    report: dict[str, Any] = {"bucket": bucket, "key": key}
    if reason := skip_reason(settings, bucket, key) or unconvertible_reason(settings, key):
        return {"action": Outcome.SKIPPED, **report, "reason": reason}
    s3 = client(settings)
    zoom = ZoomBucket(s3, settings)
    if head(s3, bucket, key) is not None:
        return {"action": Outcome.SKIPPED, **report, "reason": "the object exists again"}
    keys = PyramidKeys.for_source(key, settings.dest_prefix)
    with zoom.lease(keys, key, deadline) as lease:
        if head(s3, bucket, key) is not None:
            return {"action": Outcome.SKIPPED, **report, "reason": "the object exists again"}
        owner = zoom.owner(keys)
        if owner is not None and owner not in (key_hash(key), quote(key)):  # quoted: pyramids made before the hash
            report = {"action": Outcome.SKIPPED, **report, "reason": "the pyramid was made from another source"}
        else:
            lease.confirm()
            deleted = zoom.remove(keys)
            report = {"action": Outcome.REMOVED, **report, "descriptor": keys.descriptor, "tiles_deleted": deleted}
    # Always (a redelivery too): a successor whose conversion failed part way left tiles of its own, and the
    # retry must still see it through. Converting an up-to-date owner costs a HEAD or two.
    successor = _stem_owner(settings, s3, bucket, key)
    if successor is not None:
        report["successor"] = _successor_converted(settings, bucket, successor, deadline)
    return report


def is_up_to_date(settings: Settings, bucket: str, key: str) -> bool:
    """Is there a pyramid made from this very object with the current settings (what ``convert`` skips)?"""
    s3 = client(settings)
    source = head(s3, bucket, key)
    keys = PyramidKeys.for_source(key, settings.dest_prefix)
    return source is not None and ZoomBucket(s3, settings).is_published(keys, marker(key, source, settings))


def _planned_source(settings: Settings, s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """``key`` as one listing of its stem shows it (``ETag``, ``LastModified``, ``ContentLength``), if it exists;
    raises :class:`PermanentFailure` if another key of its stem owns the pyramid. The version comes with the
    download (which asks for this very ETag)."""
    sources = stem_sources(s3, bucket, key, functools.partial(_is_source, settings, bucket))
    listed = sources.get(key)
    if listed is None:
        return None  # gone: nothing to convert, and nothing to say about an owner
    owner = owner_of(sources)
    if owner != key:
        published = PyramidKeys.for_source(key, settings.dest_prefix).published(settings.output)
        raise PermanentFailure(
            f"{published} belongs to {owner!r}, the newest object with this stem; "
            f"rename {key!r} to give it a pyramid of its own"
        )
    return {"ETag": listed["ETag"], "LastModified": listed["LastModified"], "ContentLength": listed["Size"]}


def _is_source(settings: Settings, bucket: str, key: str) -> bool:
    return not (skip_reason(settings, bucket, key) or unconvertible_reason(settings, key))


def _stem_owner(settings: Settings, s3: Any, bucket: str, key: str) -> str | None:
    return stem_owner(s3, bucket, key, functools.partial(_is_source, settings, bucket))


def _refuse_foreign_pyramid(
    zoom: ZoomBucket,
    keys: PyramidKeys,
    descriptor: dict[str, Any] | None,
    tiff: dict[str, Any] | None,
    listed: list[str],
) -> None:
    """A ``.dzi``, a ``.tif`` or tiles at this pyramid's keys that someone else wrote: not ours to replace."""
    if is_foreign(descriptor):
        foreign: str | None = keys.descriptor
    elif is_foreign(tiff) and "tiff" in zoom.settings.output:
        foreign = keys.tiff
    else:
        foreign = zoom.foreign_tile(keys, listed)
    if foreign:
        raise PermanentFailure(f"{foreign} is in the zoom bucket but LambdaZoom did not write it; move it away")


def _fetch_and_decode(
    settings: Settings,
    s3: Any,
    bucket: str,
    key: str,
    source: dict[str, Any],
    folder: Path,
    timings: dict[str, float],
) -> tuple[deepzoom.SourceImage, dict[str, Any]]:
    """Download the very object the plan listed into ``folder`` and open it (a streamed image is decoded
    later, while it is tiled; any other is decoded here). Returns it, and ``source`` with its version."""
    path = folder / ("source." + extension_of(key))
    with _timed(timings, "download"):
        try:
            if source["ContentLength"] <= DOWNLOAD_IN_ONE:  # one GET, asking for the ETag the plan saw
                answer = s3.get_object(Bucket=bucket, Key=key, IfMatch=source["ETag"])
                with open(path, "wb") as file:
                    shutil.copyfileobj(answer["Body"], file, 2**20)
            else:  # ranges on threads, of the version the HEAD names
                answer = s3.head_object(Bucket=bucket, Key=key, IfMatch=source["ETag"])
                version = {"VersionId": answer["VersionId"]} if answer.get("VersionId") else None
                s3.download_file(bucket, key, str(path), ExtraArgs=version, Config=DOWNLOAD)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "412", "NoSuchKey", "404"):
                raise
            raise _Superseded(
                f"s3://{bucket}/{key} changed before it was downloaded; its newer version's event converts it",
                wrote=False,
            ) from None
    source = source | {"VersionId": answer.get("VersionId") or ""}
    with _timed(timings, "open"):
        try:
            return deepzoom.open_image(path, settings.limits), source
        except deepzoom.DeepZoomError as error:
            raise PermanentFailure(str(error)) from None


def _admit_from_header(settings: Settings, s3: Any, bucket: str, key: str, source: dict[str, Any]) -> None:
    """Refuse an image over the limits or the function's memory from its first bytes, before downloading it
    (a source up to ``JUDGED_AFTER_DOWNLOAD`` is judged by ``open_image`` once downloaded, by the same rules).
    Formats that keep their header further in (a TIFF whose directory is at the end) are judged after the
    download instead."""
    if source["ContentLength"] <= JUDGED_AFTER_DOWNLOAD:
        return
    first = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{HEADER_BYTES - 1}", IfMatch=source["ETag"])
    try:
        deepzoom.check_header(first["Body"].read(), settings.limits)
    except deepzoom.DeepZoomError as error:
        raise PermanentFailure(str(error)) from None


class _Superseded(Exception):
    """The source changed, or another source took the stem, while this conversion ran: publish nothing (and
    withdraw what it ``wrote``)."""

    def __init__(self, reason: str, *, wrote: bool = True) -> None:
        super().__init__(reason)
        self.wrote = wrote


def _publish(
    settings: Settings,
    zoom: ZoomBucket,
    bucket: str,
    key: str,
    source: dict[str, Any],
    keys: PyramidKeys,
    image: deepzoom.SourceImage,
    lease: Lease,
    seen: dict[str, str],
    present: dict[str, dict[str, Any]],
    status: StatusDocument,
    timings: dict[str, float],
) -> deepzoom.PyramidStats:
    """Write the page and every tile, then, if this conversion is still current, the ``.tif`` and the ``.dzi``
    (``seen``: the ETags of the objects this conversion replaces, as it saw them at its start; ``present``:
    the pyramid's siblings as planned; ``status`` hears of the progress)."""
    sink = S3Sink(
        _tile_store(settings, zoom.s3),
        s3=zoom.s3,
        seen=seen,
        cache_control=settings.cache_control,
        index_cache_control=settings.index_cache_control,
        metadata=marker(key, source, settings),
        guard=lease.check,
        receipt=receipt.current(),
    )

    def still_current() -> None:
        """The last look before the descriptor goes up: the lease is still ours (so are the tiles), and the plan
        still holds: this very object (its ETag, and its time, for an A-B-A overwrite) owns the stem."""
        lease.confirm()
        try:
            now = _planned_source(settings, zoom.s3, bucket, key)
        except PermanentFailure as failure:  # a newer source with this stem appeared
            raise _Superseded(str(failure)) from None
        if now is None:
            raise _Superseded(f"s3://{bucket}/{key} was deleted while it was converted; nothing was published")
        if (now["ETag"], now["LastModified"]) != (source["ETag"], source["LastModified"]):
            raise _Superseded(
                f"s3://{bucket}/{key} was overwritten while it was converted; nothing was published, "
                "the conversion of the new version publishes it"
            )

    with _timed(timings, "tile_upload"):  # for a streamed image, its decode too
        foreign_page = keys.page in present and zoom.foreign_kept(keys.page)
        if settings.viewer_pages and not foreign_page:  # before the descriptor: it marks the end
            sink.put(keys.page, _page_for(settings, keys), PAGE_CONTENT_TYPE)
        try:
            return deepzoom.write_pyramid(
                image,
                sink,
                keys.name,
                settings.tiles,
                workers=settings.upload_concurrency,
                iiif=settings.iiif_for(keys.name),
                outputs=settings.output,
                progress=status.progress,
                before_publish=still_current,
            )
        except ReplacedMeanwhile as replaced:  # a newer conversion published its .tif first
            raise _Superseded(str(replaced)) from None
        except deepzoom.DeepZoomError as error:  # a streamed image's data broke off: no descriptor was written
            lease.confirm()  # nothing is deleted on behalf of a conversion that lost its lease
            withdrawn = zoom.withdraw(keys)
            reason = f"{error} (the {withdrawn} tiles written before that were deleted)" if withdrawn else str(error)
            raise PermanentFailure(reason) from None


def _converted(
    report: dict[str, Any],
    settings: Settings,
    source: dict[str, Any],
    decoding: str,
    keys: PyramidKeys,
    stats: deepzoom.PyramidStats,
    orphans: int,
    timings: dict[str, float],
) -> dict[str, Any]:
    """The one JSON line a conversion logs."""
    dzi, tiff = "dzi" in settings.output, "tiff" in settings.output
    return {
        "action": Outcome.CONVERTED,
        **report,
        "bytes": source["ContentLength"],
        "decoding": decoding,
        **({"descriptor": keys.descriptor} if dzi else {}),
        **({"tiff": keys.tiff, "tiff_bytes": stats.tiff_bytes} if tiff else {}),
        **({"iiif": keys.iiif_info} if settings.iiif_output else {}),
        "width": stats.width,
        "height": stats.height,
        "pixels": stats.width * stats.height,
        "levels": stats.levels,
        "tiles": stats.tiles,
        "output_bytes": stats.bytes,
        "orphans_deleted": orphans,
        "seconds": {phase: round(seconds, 3) for phase, seconds in timings.items()},
    }


def _successor_converted(settings: Settings, bucket: str, key: str, deadline: Deadline) -> dict[str, Any]:
    """Convert the source that now owns a stem; S3 and network errors go up (the removal is retried)."""
    try:
        done = convert(settings, bucket, key, deadline=deadline)
    except PermanentFailure as failure:
        return {"key": key, "action": Outcome.FAILED, "reason": str(failure)}
    return {"key": key, "action": done["action"]}


def _page_for(settings: Settings, keys: PyramidKeys) -> bytes:
    """The viewer page, pointing at the ``.dzi`` beside it (or, with OUTPUT=tiff alone, the ``.tif``) by a
    relative URL, so it works behind any host."""
    stem = keys.name.rsplit("/", 1)[-1]
    kind = "dzi" if "dzi" in settings.output else "tif"
    return viewer_page(
        stem,
        f"{quote(stem)}.{kind}",
        settings.openseadragon_url,
        integrity=settings.openseadragon_sri,
        kind=kind,
        geotiff_tilesource_url=settings.geotiff_tilesource_url,
        geotiff_tilesource_integrity=settings.geotiff_tilesource_sri,
        status_url=quote(stem) + ".status.json",
    )


_regions: dict[str, str] = {}  # bucket -> its region, looked up once per container


def _tile_store(settings: Settings, s3: Any) -> Any:
    """The store for tile PUTs, in the zoom bucket's own region."""
    bucket = settings.zoom_bucket
    if bucket not in _regions:
        _regions[bucket] = bucket_region(s3, bucket)
    return tile_store(bucket, _regions[bucket], settings.s3_max_attempts)


@contextmanager
def _timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    """Record the seconds the block took as ``timings[phase]``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[phase] = time.perf_counter() - started
