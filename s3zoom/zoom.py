"""The zoom bucket, and what in it is LambdaZoom's.

Every object a conversion writes carries a marker in its user metadata: a hash of the source key, the
source's ETag and version, and the settings' fingerprint. The marker says whether a pyramid is up to
date (a redelivered event has nothing to do), which source made it, and whether an object is ours at
all: what carries no marker is someone else's, and is never overwritten or deleted.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import ClientError

from config import Settings
from deepzoom import DeepZoomGeometry, IIIFLayout, TileSettings

from . import receipt
from .clients import RENEWAL_CLIENT, RENEWAL_LIFETIME, WRITE_LIFETIME, s3_client
from .deadline import Deadline
from .keys import PyramidKeys
from .lease import Lease, leased

log = logging.getLogger("lambdazoom")

# User metadata on every object of a pyramid (S3 sends them back lower-cased).
SOURCE_KEY = "lambdazoom-source-key-sha256"  # a hash: S3 allows 2 KB of metadata, and a key of ü is 2,544 URL-quoted
OLD_SOURCE_KEY = "lambdazoom-source-key"  # the URL-quoted key, on pyramids made before the hash
SOURCE_ETAG = "lambdazoom-source-etag"
SOURCE_VERSION = "lambdazoom-source-version"
SETTINGS = "lambdazoom-settings"
DELETE_BATCH = 1000  # the most keys one DeleteObjects call takes


def marker(key: str, source: dict[str, Any], settings: Settings) -> dict[str, str]:
    """What every object of the pyramid records about the source (its HEAD) and settings it was made from."""
    return {
        SOURCE_KEY: key_hash(key),
        SOURCE_ETAG: source["ETag"].strip('"'),
        SOURCE_VERSION: source.get("VersionId") or "",
        SETTINGS: settings.fingerprint,
    }


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def same_marker(metadata: dict[str, str], wanted: dict[str, str]) -> bool:
    """Was an object with ``metadata`` made from the very source version and settings of ``wanted``?"""
    if metadata.get(SETTINGS) != wanted[SETTINGS]:
        return False
    if wanted[SOURCE_VERSION]:
        return metadata.get(SOURCE_VERSION) == wanted[SOURCE_VERSION]
    return metadata.get(SOURCE_ETAG) == wanted[SOURCE_ETAG]


def metadata_of(head: dict[str, Any]) -> dict[str, str]:
    """An object's user metadata with lower-case names: S3 sends them so, but HTTP names are case-blind
    and some servers (and proxies) capitalise them."""
    return {name.lower(): value for name, value in head.get("Metadata", {}).items()}


def head(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """HEAD of ``s3://bucket/key``, or None if there is no such object."""
    try:
        return s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def is_current(found: dict[str, Any] | None, wanted: dict[str, str]) -> bool:
    """Is ``found`` (a HEAD) LambdaZoom's, made from the source version and settings of ``wanted``?"""
    return found is not None and not is_foreign(found) and same_marker(metadata_of(found), wanted)


def is_foreign(found: dict[str, Any] | None) -> bool:
    """Is this (a HEAD) an object that LambdaZoom did not write (it carries none of our markers)?"""
    return found is not None and not ({SOURCE_KEY, OLD_SOURCE_KEY} & metadata_of(found).keys())


def renewal_client_maker() -> Callable[[], Any]:
    """What makes a lease's renewal client (short timeouts, one attempt): the current receipt's, so the renewals
    are counted on it, else a shared one. Made when the first renewal is due, on the lease's thread."""
    bill = receipt.current()
    return functools.partial(bill.client if bill else s3_client, **RENEWAL_CLIENT)


class ZoomBucket:
    """The zoom bucket of ``settings``, through the boto3 client ``s3``: reading, deleting, and the lease."""

    def __init__(self, s3: Any, settings: Settings) -> None:
        self.s3 = s3
        self.settings = settings
        self.name = settings.zoom_bucket
        self.guard: Callable[[], None] | None = None  # called before each DeleteObjects: the held lease's check

    def head(self, key: str) -> dict[str, Any] | None:
        return head(self.s3, self.name, key)

    @contextmanager
    def lease(self, keys: PyramidKeys, source_key: str, deadline: Deadline) -> Iterator[Lease]:
        """Held while a conversion or removal of ``source_key`` writes the pyramid: one at a time. While it is
        held, every batch of deletions first checks that it still is. It is waited for only as long as
        ``deadline`` leaves, and stops being writable once the deadline's margin is reached."""
        with leased(
            self.s3,
            self.name,
            keys.lease,
            source_key,
            ttl=self.settings.lease_seconds,
            wait=min(self.settings.lease_wait_seconds, max(deadline.left(), 0.0)),
            write_lifetime=WRITE_LIFETIME,
            renewer=renewal_client_maker(),
            renewal_lifetime=RENEWAL_LIFETIME,
            deadline=deadline,
        ) as held:
            self.guard = held.check
            try:
                yield held
            finally:
                self.guard = None

    def is_published(self, keys: PyramidKeys, wanted: dict[str, str]) -> bool:
        """Is the pyramid's ``.dzi`` (or, for OUTPUT=tiff, its ``.tif``) up, ours, and made from the source and
        settings of ``wanted``?"""
        return is_current(self.head(keys.published(self.settings.output)), wanted)

    def owner(self, keys: PyramidKeys) -> str | None:
        """The hash of the source key recorded on the pyramid's descriptor, else its TIFF, else a tile."""
        found = self.head(keys.descriptor) or self.head(keys.tiff)
        if found is None:
            tile = next((key for key in self.listed(keys.files_prefix) if keys.is_tile(key)), None)
            found = self.head(tile) if tile else None
        if not found:
            return None
        metadata = metadata_of(found)
        return metadata.get(SOURCE_KEY) or metadata.get(OLD_SOURCE_KEY)

    def ours(self, keys: list[str]) -> list[str]:
        """Those of ``keys`` that are not someone else's (each of those is left alone, with a warning)."""
        return [key for key in keys if not self.foreign_kept(key)]

    def foreign_kept(self, key: str) -> bool:
        """True, with a warning, if ``key`` is someone else's: it is then neither overwritten nor deleted."""
        if not is_foreign(self.head(key)):
            return False
        log.warning("left alone: %s is in the zoom bucket but LambdaZoom did not write it", key)
        return True

    def foreign_tile(self, keys: PyramidKeys, listed: list[str] | None = None) -> str | None:
        """A tile at this pyramid's keys that LambdaZoom did not write, judged by a sample (the first, middle
        and last of the first thousand, Deep Zoom and IIIF) of ``listed`` (else of a listing made here): a
        hand-made folder is foreign throughout."""
        if listed is None:
            listed = self.folder_files(keys)
        for is_ours in (keys.is_tile, keys.is_iiif_file):
            found = [key for key in listed if is_ours(key)][:1000]
            for key in {found[0], found[len(found) // 2], found[-1]} if found else ():
                if is_foreign(self.head(key)):
                    return key
        return None

    def siblings(self, keys: PyramidKeys) -> dict[str, dict[str, Any]]:
        """The pyramid's ``.dzi``, page, ``.tif``, status and preview that exist, by key, and its folders
        (``NAME_files/``, ``NAME_iiif/``) that hold anything, as keys with no item: one listing shows them all,
        the folders' contents standing as one common prefix each."""
        wanted = {keys.descriptor, keys.page, keys.tiff, keys.status, keys.preview}
        folders = {keys.files_prefix, keys.iiif_prefix}
        found: dict[str, dict[str, Any]] = {}
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=keys.name, Delimiter="/")
        for page in pages:
            found |= {item["Key"]: item for item in page.get("Contents", []) if item["Key"] in wanted}
            found |= {common["Prefix"]: {} for common in page.get("CommonPrefixes", []) if common["Prefix"] in folders}
        return found

    def folder_files(self, keys: PyramidKeys, present: dict[str, Any] | None = None) -> list[str]:
        """The pyramid's Deep Zoom tiles and IIIF files, in one listing of both folders (none at all where
        ``present``, its ``siblings``, shows both folders empty)."""
        if present is not None and not {keys.files_prefix, keys.iiif_prefix} & present.keys():
            return []
        return [key for key in self.listed(keys.name + "_") if keys.is_tile(key) or keys.is_iiif_file(key)]

    def listed(self, prefix: str) -> Iterator[str]:
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]

    def retire(self, keys: PyramidKeys) -> None:
        """Take a published pyramid down: its ``.dzi`` and IIIF ``info.json``, which name its tiles."""
        self.delete([keys.descriptor, keys.iiif_info])

    def sweep(
        self,
        keys: PyramidKeys,
        size: tuple[int, int],
        tiles: TileSettings,
        layout_size: int | None,
        listed: list[str],
        present: Iterable[str],
    ) -> int:
        """Delete what an earlier pyramid left (``listed``, its ``folder_files``, and ``present``, its
        ``siblings``) that one of ``size`` and these settings will not write (with ``layout_size``, the IIIF
        service's tile size, when there is one)."""
        geometry = DeepZoomGeometry(*size, tiles.tile_size, tiles.overlap)
        iiif_files = keys.iiif_files(IIIFLayout(*size, layout_size, tiles.format)) if layout_size else set()
        wanted = keys.tiles(geometry, tiles.format) if "dzi" in self.settings.output else set()
        deleted = self._delete_unwanted(keys, listed, wanted | iiif_files)
        unwanted = [keys.tiff] if "tiff" not in self.settings.output else []  # from an earlier OUTPUT=tiff
        unwanted += [] if self.settings.viewer_pages else [keys.page]  # one an earlier conversion may have written
        self.delete(self.ours([key for key in unwanted if key in present]))
        return deleted

    def withdraw(self, keys: PyramidKeys) -> int:
        """Delete every file of the pyramid but its ``.dzi`` (which is not up): its page, tiles and IIIF files.
        Returns the tiles deleted."""
        self.delete(self.ours([keys.page]) if self.settings.viewer_pages else [])
        return self._delete_unwanted(keys, self.folder_files(keys), wanted=set())

    def remove(self, keys: PyramidKeys) -> int:
        """Delete the whole pyramid, ``.dzi``, ``.tif``, page, status and preview first, but for what is someone
        else's; returns the tiles deleted."""
        present = self.siblings(keys)
        self.delete(
            self.ours(
                [key for key in (keys.descriptor, keys.tiff, keys.page, keys.status, keys.preview) if key in present]
            )
        )
        listed = self.folder_files(keys, present)
        if foreign := self.foreign_tile(keys, listed):
            log.warning("left alone: %s and the tiles beside it are not LambdaZoom's", foreign)
            return 0
        return self._delete_unwanted(keys, listed, wanted=set())

    def delete(self, keys: Iterable[str]) -> int:
        """Delete ``keys`` in batches of 1000, each only while the lease is held (see ``guard``); raise if S3
        refuses any of them."""
        deleted = 0
        batch: list[str] = []
        for key in keys:
            batch.append(key)
            if len(batch) == DELETE_BATCH:
                deleted += self._delete_batch(batch)
                batch = []
        if batch:
            deleted += self._delete_batch(batch)
        return deleted

    def _delete_batch(self, keys: list[str]) -> int:
        if self.guard is not None:  # a batch takes a while: the lease may have been lost since the last one
            self.guard()
        answer = self.s3.delete_objects(
            Bucket=self.name, Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True}
        )
        if answer.get("Errors"):
            first = answer["Errors"][0]
            raise RuntimeError(f"could not delete {first['Key']}: {first.get('Code')} {first.get('Message')}")
        return len(keys)

    def _delete_unwanted(self, keys: PyramidKeys, listed: list[str], wanted: set[str]) -> int:
        """Delete the tiles and IIIF files of ``listed`` that are not ``wanted`` (``info.json`` before the IIIF
        tiles, so no client reads a service losing its tiles); returns how many."""
        tiles = [key for key in listed if keys.is_tile(key) and key not in wanted]
        iiif = [key for key in listed if keys.is_iiif_file(key) and key not in wanted]
        return self.delete(tiles) + self.delete(sorted(iiif, key=lambda key: key != keys.iiif_info))
