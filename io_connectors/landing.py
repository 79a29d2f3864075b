"""The landing zone: each archive byte for byte, content-addressed, never overwritten."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import posixpath
import uuid
from collections.abc import Callable
from typing import Any

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from io_connectors import zones
from transforms.contract import PlatformError

_COPY_CHUNK = 8 << 20


@dataclasses.dataclass(frozen=True)
class LandedArchive:
    path: str
    sha256: str
    size: int
    received_at: str


def land(source: str, zones_root: str, business_date: str, vacation_id: str) -> LandedArchive:
    """Copies ``source`` into ``landing/`` while hashing it; a content already landed is kept.

    The archive lands under its own sha256, so a different content sent under the same name
    lands beside the first instead of replacing it.
    """
    received_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
    if source.startswith(zones.join(zones_root, zones.LANDING) + "/"):
        return _already_landed(source, received_at)  # the collection service landed it
    folder = zones.join(zones_root, zones.LANDING, business_date, vacation_id)
    temporary = zones.join(folder, f"_incoming-{uuid.uuid4().hex}")
    zones.ensure_parent(temporary)
    with FileSystems.create(temporary, compression_type=CompressionTypes.UNCOMPRESSED) as writer:
        sha256, size = _hash(source, writer.write)
    final = commit_landed(temporary, folder, sha256, posixpath.basename(source))
    return LandedArchive(final, sha256, size, received_at)


def landed_path(source: str, zones_root: str, business_date: str, vacation_id: str,
                sha256: str) -> str:
    """Where ``land`` put ``source``, whose content hashes to ``sha256``."""
    if source.startswith(zones.join(zones_root, zones.LANDING) + "/"):
        return source
    return zones.join(zones_root, zones.LANDING, business_date, vacation_id, sha256,
                      posixpath.basename(source))


def commit_landed(temporary: str, folder: str, sha256: str, file_name: str) -> str:
    """Moves a fully written and hashed temporary under its sha256, or drops it when that
    content already landed, then writes the ``.sha256`` sidecar if it is not there yet (an
    earlier commit may have failed between the two); returns the landed path."""
    final = zones.join(folder, sha256, file_name)
    if FileSystems.exists(final):
        FileSystems.delete([temporary])
    else:
        zones.rename(temporary, final)
    if not FileSystems.exists(f"{final}.sha256"):
        zones.write_atomically(f"{final}.sha256", f"{sha256}  {file_name}\n".encode())
    return final


class LandedArchiveChanged(PlatformError):
    """A landed archive no longer hashes to the sha256 it landed under: changed on disk since
    it was received, so never ingested."""


def _already_landed(path: str, received_at: str) -> LandedArchive:
    """An archive already in landing/ is never copied again, only hashed (and checked against
    the sha256 it landed under)."""
    sha256, size = _hash(path)
    if posixpath.basename(posixpath.dirname(path)) != sha256:
        raise LandedArchiveChanged(f"{path} no longer hashes to the sha256 it landed under "
                                   f"(it hashes to {sha256}): changed since it was received")
    return LandedArchive(path, sha256, size, received_at)


def _hash(path: str, consume: Callable[[bytes], Any] = lambda chunk: None) -> tuple[str, int]:
    """The sha256 and size of a file, read once in chunks that ``consume`` also gets."""
    digest, size = hashlib.sha256(), 0
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as reader:
        while chunk := reader.read(_COPY_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            consume(chunk)
    return digest.hexdigest(), size
