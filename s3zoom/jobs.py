"""Turn one source object into a pyramid in the zoom bucket, or take one away.

Both are safe to repeat: S3 delivers events at least once, and Lambda retries
a function that raised. A conversion publishes its ``.dzi`` only after every
tile is stored, so a viewer sees the old pyramid, no pyramid, or the new one
complete, never a mixture.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from botocore.exceptions import ClientError

import config
import deepzoom

from .clients import bucket_region, s3_client, tile_store
from .keys import LONGEST_OUTPUT_SUFFIX, MAX_KEY_BYTES, PyramidKeys, extension_of, is_own_output, path_problem
from .lease import Lease, leased
from .owners import stem_owner
from .page import CONTENT_TYPE as PAGE_CONTENT_TYPE
from .page import viewer_page
from .sink import S3Sink

log = logging.getLogger("lambdazoom")

# User metadata on every object of a pyramid (S3 sends them back lower-cased).
SOURCE_KEY = "lambdazoom-source-key-sha256"  # a hash: S3 allows 2 KB of metadata, and a key of ü is 2,544 URL-quoted
OLD_SOURCE_KEY = "lambdazoom-source-key"  # the URL-quoted key, on pyramids made before the hash
SOURCE_ETAG = "lambdazoom-source-etag"
SOURCE_VERSION = "lambdazoom-source-version"
SETTINGS = "lambdazoom-settings"
DELETE_BATCH = 1000  # the most keys one DeleteObjects call takes
SCRATCH_PREFIX = "lambdazoom-"
HEADER_BYTES = 256 * 1024  # enough for a JPEG's EXIF and ICC segments or a PNG's chunks before its pixels
SCRATCH_MARK = ".lambdazoom-scratch"  # inside each scratch folder this function makes
STALE_SCRATCH_SECONDS = 900  # Lambda's longest run: an older scratch folder belongs to no live invocation


class PermanentFailure(Exception):
    """This object will never convert as it is: log it once, do not retry."""


def client() -> Any:
    return s3_client(config.UPLOAD_CONCURRENCY + 8, config.S3_RETRY_MODE, config.S3_MAX_ATTEMPTS)


def skip_reason(bucket: str, key: str) -> str | None:
    """Why ``key`` must not be converted or removed, if it must not; None if it is a source image."""
    if bucket == config.S3_ZOOM_BUCKET and is_own_output(key, config.DEST_PREFIX):
        return "this is LambdaZoom's own output (the zoom bucket is also the source bucket)"
    return None


def convert(bucket: str, key: str, *, force: bool = False) -> dict[str, Any]:
    """Convert ``s3://bucket/key``; return the report that is logged as one JSON line.

    An up-to-date pyramid is left alone unless ``force``. Raises
    :class:`PermanentFailure` for input that will never convert (or a key
    whose stem another source owns), and lets S3 and network errors through
    so that Lambda retries. Only one conversion at a time writes a pyramid
    (it holds the pyramid's lease), and it publishes only if its source is
    still the current version of the stem's owner when every tile is stored.
    """
    report: dict[str, Any] = {"action": "convert", "bucket": bucket, "key": key}
    reason = skip_reason(bucket, key)
    if reason:
        return {**report, "action": "skipped", "reason": reason}
    reason = unconvertible_reason(key)
    if reason:
        raise PermanentFailure(reason)
    s3 = client()
    keys = PyramidKeys.for_source(key, config.DEST_PREFIX)
    source = _current_source(s3, bucket, key, keys)
    if source is None:
        return {**report, "action": "skipped", "reason": "the object no longer exists"}
    if not force and _is_published(s3, keys, _marker(key, source)):  # a redelivery: no lease needed to see it
        return {**report, "action": "skipped", "reason": "pyramid already up to date"}
    try:
        iiif = config.iiif_output(keys.name)
    except ValueError as error:  # a configuration to fix, found before any download: logged, and retried after
        raise RuntimeError(str(error)) from None
    with _pyramid_lease(s3, keys, key) as lease:
        source = _current_source(s3, bucket, key, keys)  # again: it may have changed while this waited
        if source is None:
            return {**report, "action": "skipped", "reason": "the object no longer exists"}
        published = _head(s3, config.S3_ZOOM_BUCKET, keys.descriptor)
        foreign = keys.descriptor if _foreign(published) else _foreign_tile(s3, keys)
        if foreign:
            raise PermanentFailure(f"{foreign} is in the zoom bucket but LambdaZoom did not write it; move it away")
        if not force and published is not None and _same_marker(_metadata(published), _marker(key, source)):
            return {**report, "action": "skipped", "reason": "pyramid already up to date"}
        try:
            return {**report, **_make_pyramid(s3, bucket, key, keys, source, published, iiif, lease)}
        except _Superseded as superseded:
            return {**report, "action": "superseded", "reason": _withdrawn(s3, keys, str(superseded))}


def _make_pyramid(
    s3: Any,
    bucket: str,
    key: str,
    keys: PyramidKeys,
    source: dict[str, Any],
    published: dict[str, Any] | None,
    iiif: deepzoom.IIIFOutput | None,
    lease: Lease,
) -> dict[str, Any]:
    """Download, decode and tile ``source`` into the pyramid, holding its lease; the report's figures."""
    size = source["ContentLength"]
    _admit_from_header(s3, bucket, key, source)
    _remove_stale_scratch()
    _check_scratch_space(size)
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX, dir=config.TMP_DIR) as scratch:
        Path(scratch, SCRATCH_MARK).touch()  # the sweep removes only folders that carry it
        path = os.path.join(scratch, "source." + extension_of(key))
        with _timed(timings, "download"):
            extra = {"VersionId": source["VersionId"]} if source.get("VersionId") else None
            s3.download_file(bucket, key, path, ExtraArgs=extra)
        with _timed(timings, "open"):  # a streamed image is decoded while it is tiled, a whole one here
            try:
                image = deepzoom.open_image(path, config.LIMITS)
            except deepzoom.DeepZoomError as error:
                raise PermanentFailure(str(error)) from None
        settings = config.tile_settings()
        if published is not None:  # a different source or settings: no viewer may pair them with new tiles
            _delete(s3, [keys.descriptor, keys.iiif_prefix + deepzoom.iiif.INFO])
        # With no descriptor up, files of an earlier pyramid that the new one will not overwrite can go now,
        # before the new descriptor marks the work done: a retry after a failure here sweeps again.
        orphans = _sweep(s3, keys, image.size, settings, iiif)
        sink = S3Sink(
            _tile_store(config.S3_ZOOM_BUCKET),
            cache_control=config.CACHE_CONTROL,
            index_cache_control=config.INDEX_CACHE_CONTROL,
            metadata=_marker(key, source),
            guard=lease.check,
        )
        with _timed(timings, "tile_upload"):
            if config.VIEWER_PAGES and not _foreign_kept(s3, keys.page):  # before the descriptor: it marks the end
                sink.put(keys.page, _page_for(keys), PAGE_CONTENT_TYPE)
            try:
                stats = deepzoom.write_pyramid(
                    image,
                    sink,
                    keys.name,
                    settings,
                    workers=config.UPLOAD_CONCURRENCY,
                    iiif=iiif,
                    before_publish=functools.partial(_check_still_current, s3, bucket, key, keys, source, lease),
                )
            except deepzoom.DeepZoomError as error:  # a streamed image's data broke off: no descriptor was written
                raise PermanentFailure(_withdrawn(s3, keys, str(error))) from None
        decoding = image.decoding
        del image
    return {
        "action": "converted",
        "bytes": size,
        "decoding": decoding,
        "descriptor": keys.descriptor,
        **({"iiif": keys.iiif_prefix + deepzoom.iiif.INFO} if iiif else {}),
        "width": stats.width,
        "height": stats.height,
        "pixels": stats.width * stats.height,
        "levels": stats.levels,
        "tiles": stats.tiles,
        "output_bytes": stats.bytes,
        "orphans_deleted": orphans,
        "seconds": {phase: round(seconds, 3) for phase, seconds in timings.items()},
    }


class _Superseded(Exception):
    """The source changed, or another source took the stem, while this conversion ran: publish nothing."""


def _check_still_current(
    s3: Any, bucket: str, key: str, keys: PyramidKeys, source: dict[str, Any], lease: Lease
) -> None:
    """The last look before the descriptor goes up: this very version still owns the stem, and the lease is ours."""
    try:
        now = _current_source(s3, bucket, key, keys)
    except PermanentFailure as failure:  # a newer source with this stem appeared
        raise _Superseded(str(failure)) from None
    if now is None:
        raise _Superseded(f"s3://{bucket}/{key} was deleted while it was converted; nothing was published")
    if _marker(key, now) != _marker(key, source):
        raise _Superseded(
            f"s3://{bucket}/{key} was overwritten while it was converted; nothing was published, "
            "the conversion of the new version publishes it"
        )
    lease.confirm()


def _current_source(s3: Any, bucket: str, key: str, keys: PyramidKeys) -> dict[str, Any] | None:
    """HEAD of ``key`` if it exists; raises :class:`PermanentFailure` if another key of its stem owns the pyramid."""
    owner = _stem_owner(s3, bucket, key)
    if owner is None:
        return None
    if owner != key:
        raise PermanentFailure(
            f"{keys.descriptor} belongs to {owner!r}, the newest object with this stem; "
            f"rename {key!r} to give it a pyramid of its own"
        )
    return _head(s3, bucket, key)


def _is_published(s3: Any, keys: PyramidKeys, marker: dict[str, str]) -> bool:
    published = _head(s3, config.S3_ZOOM_BUCKET, keys.descriptor)
    return published is not None and not _foreign(published) and _same_marker(_metadata(published), marker)


def _pyramid_lease(s3: Any, keys: PyramidKeys, key: str) -> AbstractContextManager[Lease]:
    """Held while a conversion or removal of ``key`` writes the pyramid: one at a time."""
    return leased(s3, config.S3_ZOOM_BUCKET, keys.lease, key, ttl=config.LEASE_SECONDS, wait=config.LEASE_WAIT_SECONDS)


def _stem_owner(s3: Any, bucket: str, key: str) -> str | None:
    return stem_owner(s3, bucket, key, lambda found: not (skip_reason(bucket, found) or unconvertible_reason(found)))


def remove(bucket: str, key: str) -> dict[str, Any]:
    """Delete the pyramid of a removed source: the ``.dzi`` first, then every tile.

    Only a pyramid this very key made: deleting ``a.xmp``, or ``a.png`` when
    ``a.jpg`` made ``a.dzi``, leaves ``a.dzi`` alone. When the owner goes and
    another source with its stem remains, that one is converted (the stem's
    rule, see owners.py, chooses it).
    """
    report: dict[str, Any] = {"action": "remove", "bucket": bucket, "key": key}
    reason = skip_reason(bucket, key) or unconvertible_reason(key)
    if reason:
        return {**report, "action": "skipped", "reason": reason}
    s3 = client()
    if _head(s3, bucket, key) is not None:
        return {**report, "action": "skipped", "reason": "the object exists again"}
    keys = PyramidKeys.for_source(key, config.DEST_PREFIX)
    with _pyramid_lease(s3, keys, key):
        if _head(s3, bucket, key) is not None:
            return {**report, "action": "skipped", "reason": "the object exists again"}
        owner = _owner(s3, keys)
        if owner is not None and owner not in (_key_hash(key), quote(key)):  # quoted: pyramids made before the hash
            return {**report, "action": "skipped", "reason": "the pyramid was made from another source with this stem"}
        _delete(s3, _ours(s3, [keys.descriptor, keys.page]))
        foreign = _foreign_tile(s3, keys)
        if foreign:
            log.warning("left alone: %s and the tiles beside it are not LambdaZoom's", foreign)
            deleted = 0
        else:
            deleted = _delete(s3, (found for found in _listed(s3, keys.files_prefix) if keys.is_tile(found)))
            deleted += _delete(s3, _stale_iiif_files(s3, keys, wanted=set()))
    report = {**report, "action": "removed", "descriptor": keys.descriptor, "tiles_deleted": deleted}
    successor = _stem_owner(s3, bucket, key)
    if successor is not None:
        report["successor"] = _successor_converted(bucket, successor)
    return report


def _successor_converted(bucket: str, key: str) -> dict[str, Any]:
    """Convert the source that now owns a stem; S3 and network errors go up (the removal is retried)."""
    try:
        done = convert(bucket, key)
    except PermanentFailure as failure:
        return {"key": key, "action": "failed", "reason": str(failure)}
    return {"key": key, "action": done["action"]}


def is_up_to_date(bucket: str, key: str) -> bool:
    """Is there a pyramid made from this very object with the current settings (what ``convert`` skips)?"""
    s3 = client()
    source = _head(s3, bucket, key)
    published = _head(s3, config.S3_ZOOM_BUCKET, PyramidKeys.for_source(key, config.DEST_PREFIX).descriptor)
    if source is None or published is None:
        return False
    return _same_marker(_metadata(published), _marker(key, source))


def unconvertible_reason(key: str) -> str | None:
    """Why a source key can never have a pyramid, if it cannot."""
    if extension_of(key) not in config.ACCEPTED_EXTENSIONS:
        return f"extension {extension_of(key) or '(none)'!r} is not in ACCEPTED_EXTENSIONS"
    if problem := path_problem(PyramidKeys.for_source(key, config.DEST_PREFIX).name):
        return f"key has {problem}, which its pyramid's keys cannot carry; rename the object"
    longest = len(PyramidKeys.for_source(key, config.DEST_PREFIX).name.encode()) + LONGEST_OUTPUT_SUFFIX
    if longest > MAX_KEY_BYTES:
        return f"its pyramid's keys would be up to {longest} bytes long, over S3's {MAX_KEY_BYTES}; shorten the key"
    return None


def _foreign(head: dict[str, Any] | None) -> bool:
    """Is this an object of the zoom bucket that LambdaZoom did not write (it carries none of our markers)?"""
    return head is not None and not ({SOURCE_KEY, OLD_SOURCE_KEY} & _metadata(head).keys())


def _ours(s3: Any, keys: list[str]) -> list[str]:
    """Those of ``keys`` that are not someone else's (each of those is left alone, with a warning)."""
    return [key for key in keys if not _foreign_kept(s3, key)]


def _foreign_kept(s3: Any, key: str) -> bool:
    """True, with a warning, if ``key`` is someone else's: it is then neither overwritten nor deleted."""
    if not _foreign(_head(s3, config.S3_ZOOM_BUCKET, key)):
        return False
    log.warning("left alone: %s is in the zoom bucket but LambdaZoom did not write it", key)
    return True


def _owner(s3: Any, keys: PyramidKeys) -> str | None:
    """The hash of the source key recorded on the pyramid's descriptor, or on a tile if there is no descriptor."""
    found = _head(s3, config.S3_ZOOM_BUCKET, keys.descriptor)
    if found is None:
        tile = next((key for key in _listed(s3, keys.files_prefix) if keys.is_tile(key)), None)
        found = _head(s3, config.S3_ZOOM_BUCKET, tile) if tile else None
    if not found:
        return None
    metadata = _metadata(found)
    return metadata.get(SOURCE_KEY) or metadata.get(OLD_SOURCE_KEY)


def _foreign_tile(s3: Any, keys: PyramidKeys) -> str | None:
    """A tile at this pyramid's keys that LambdaZoom did not write, judged by a sample (the first, middle
    and last of the first thousand listed, Deep Zoom and IIIF): a hand-made folder is foreign throughout."""
    for prefix, is_ours in ((keys.files_prefix, keys.is_tile), (keys.iiif_prefix, keys.is_iiif_file)):
        answer = s3.list_objects_v2(Bucket=config.S3_ZOOM_BUCKET, Prefix=prefix)
        found = [item["Key"] for item in answer.get("Contents", []) if is_ours(item["Key"])]
        for key in {found[0], found[len(found) // 2], found[-1]} if found else ():
            if _foreign(_head(s3, config.S3_ZOOM_BUCKET, key)):
                return key
    return None


def _page_for(keys: PyramidKeys) -> bytes:
    """The viewer page, pointing at the descriptor beside it by a relative URL (works behind any host)."""
    stem = keys.name.rsplit("/", 1)[-1]
    return viewer_page(stem, quote(stem) + ".dzi", config.OPENSEADRAGON_URL, integrity=config.OPENSEADRAGON_SRI)


def _head(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _metadata(head: dict[str, Any]) -> dict[str, str]:
    """An object's user metadata with lower-case names: S3 sends them so, but HTTP names are case-blind
    and some servers (and proxies) capitalise them."""
    return {name.lower(): value for name, value in head.get("Metadata", {}).items()}


def _marker(key: str, source: dict[str, Any]) -> dict[str, str]:
    """What every object of the pyramid records about the source and settings it was made from."""
    return {
        SOURCE_KEY: _key_hash(key),
        SOURCE_ETAG: source["ETag"].strip('"'),
        SOURCE_VERSION: source.get("VersionId") or "",
        SETTINGS: config.settings_fingerprint(),
    }


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _same_marker(metadata: dict[str, str], marker: dict[str, str]) -> bool:
    if metadata.get(SETTINGS) != marker[SETTINGS]:
        return False
    if marker[SOURCE_VERSION]:
        return metadata.get(SOURCE_VERSION) == marker[SOURCE_VERSION]
    return metadata.get(SOURCE_ETAG) == marker[SOURCE_ETAG]


def _remove_stale_scratch() -> None:
    """Scratch folders of invocations that timed out: Lambda kills them before ``finally`` runs,
    and a warm container keeps its /tmp. Only folders with our mark go: TMP_DIR may be shared."""
    cutoff = time.time() - STALE_SCRATCH_SECONDS
    with os.scandir(config.TMP_DIR) as entries:
        for entry in entries:
            if not entry.name.startswith(SCRATCH_PREFIX):
                continue
            try:  # a folder of another process (backfill workers) may vanish while we look
                stale = entry.is_dir() and entry.stat().st_mtime < cutoff and Path(entry.path, SCRATCH_MARK).exists()
            except FileNotFoundError:
                continue
            if stale:
                shutil.rmtree(entry.path, ignore_errors=True)


def _withdrawn(s3: Any, keys: PyramidKeys, reason: str) -> str:
    """Delete the page and tiles a conversion wrote before its source's data broke off; ``reason``, told so."""
    _delete(s3, _ours(s3, [keys.page]) if config.VIEWER_PAGES else [])
    deleted = _delete(s3, _stale_tiles(s3, keys, wanted=set()))
    deleted += _delete(s3, _stale_iiif_files(s3, keys, wanted=set()))
    return f"{reason} (the {deleted} tiles written before that were deleted)" if deleted else reason


def _admit_from_header(s3: Any, bucket: str, key: str, source: dict[str, Any]) -> None:
    """Refuse an image over MAX_PIXELS or the function's memory from its first bytes, before downloading it.

    Formats that keep their header further in (a TIFF whose directory is at the end) are judged after the
    download instead, by the same rule.
    """
    if source["ContentLength"] == 0:
        return  # nothing to range over; open_image names it
    extra = {"VersionId": source["VersionId"]} if source.get("VersionId") else {}
    head = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{HEADER_BYTES - 1}", **extra)["Body"].read()
    try:
        deepzoom.check_header(head, config.LIMITS)
    except deepzoom.DeepZoomError as error:
        raise PermanentFailure(str(error)) from None


def _check_scratch_space(size: int) -> None:
    free = shutil.disk_usage(config.TMP_DIR).free
    if size > free:
        raise PermanentFailure(
            f"the object is {size / 1e9:.2f} GB but {config.TMP_DIR} has {free / 1e9:.2f} GB free; "
            "raise the function's ephemeral storage"
        )


def _tile_store(bucket: str) -> Any:
    """The store for tile PUTs, in the bucket's own region (looked up once per container)."""
    return tile_store(bucket, _bucket_region(bucket), config.S3_MAX_ATTEMPTS)


@functools.cache
def _bucket_region(bucket: str) -> str:
    return bucket_region(client(), bucket)


def _listed(s3: Any, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=config.S3_ZOOM_BUCKET, Prefix=prefix):
        for item in page.get("Contents", []):
            yield item["Key"]


def _sweep(
    s3: Any, keys: PyramidKeys, size: tuple[int, int], settings: deepzoom.TileSettings, iiif: deepzoom.IIIFOutput | None
) -> int:
    """Delete what an earlier pyramid left that one of ``size`` and these settings will not write."""
    geometry = deepzoom.DeepZoomGeometry(*size, settings.tile_size, settings.overlap)
    iiif_files = keys.iiif_files(deepzoom.IIIFLayout(*size, iiif.tile_size, settings.format)) if iiif else set()
    deleted = _delete(s3, _stale_tiles(s3, keys, keys.tiles(geometry, settings.format)))
    deleted += _delete(s3, _stale_iiif_files(s3, keys, iiif_files))
    if not config.VIEWER_PAGES:
        _delete(s3, _ours(s3, [keys.page]))  # one an earlier conversion may have written
    return deleted


def _stale_tiles(s3: Any, keys: PyramidKeys, wanted: set[str]) -> Iterator[str]:
    """Tiles of an earlier pyramid (bigger, or in another format) that the new grid does not have."""
    return (found for found in _listed(s3, keys.files_prefix) if keys.is_tile(found) and found not in wanted)


def _stale_iiif_files(s3: Any, keys: PyramidKeys, wanted: set[str]) -> Iterator[str]:
    """IIIF files (``info.json`` first, so no client reads a service losing its tiles) not in ``wanted``."""
    found = [key for key in _listed(s3, keys.iiif_prefix) if keys.is_iiif_file(key) and key not in wanted]
    return iter(sorted(found, key=lambda key: not key.endswith("/" + deepzoom.iiif.INFO)))


def _delete(s3: Any, keys: Iterable[str]) -> int:
    """Delete ``keys`` in batches of 1000; raise if S3 refuses any of them."""
    deleted = 0
    batch: list[str] = []
    for key in keys:
        batch.append(key)
        if len(batch) == DELETE_BATCH:
            deleted += _delete_batch(s3, batch)
            batch = []
    if batch:
        deleted += _delete_batch(s3, batch)
    return deleted


def _delete_batch(s3: Any, keys: list[str]) -> int:
    answer = s3.delete_objects(
        Bucket=config.S3_ZOOM_BUCKET, Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True}
    )
    if answer.get("Errors"):
        first = answer["Errors"][0]
        raise RuntimeError(f"could not delete {first['Key']}: {first.get('Code')} {first.get('Message')}")
    return len(keys)


@contextmanager
def _timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    """Record the seconds the block took as ``timings[phase]``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[phase] = time.perf_counter() - started
