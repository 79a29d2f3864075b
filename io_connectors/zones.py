"""The zones under one root (spec 2.5), local or ``gs://``, through Beam's ``FileSystems``.

Layout::

    landing/<business date>/<vacation id>/<sha256>/<archive>      the archive as received
    landing/<business date>/<vacation id>/<sha256>/<archive>.sha256
    proxy_producer/<TYPE>/business_date=<D>/vacation_id=<V>/part-*.avro
    proxy_producer/_vacations/<V>.json        the commit record: written last, lists every file
    proxy_producer/_staging/<V>.<run>/...     a run's files before publication

A reader of the Proxy Producer zone takes a vacation's files from its commit record (or checks
that the record exists before reading a partition): that is what makes publication atomic on
object stores, which have no multi-object rename.
"""

from __future__ import annotations

import errno
import json
import os
import posixpath
import uuid
from typing import Any, Optional

from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems

LANDING = "landing"
PROXY_PRODUCER = "proxy_producer"

_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def join(*parts: str) -> str:
    root, rest = parts[0], [part.strip("/") for part in parts[1:]]
    if "://" in root:
        return posixpath.join(root.rstrip("/"), *rest)
    return FileSystems.join(root, *rest)


def ensure_parent(path: str) -> None:
    """Local renames need the target's folder; object stores have no folders."""
    if "://" in path:
        return
    parent = posixpath.dirname(path)
    if not FileSystems.exists(parent):
        try:
            FileSystems.mkdirs(parent)
        except (BeamIOError, OSError):
            if not FileSystems.exists(parent):
                raise


def discard(path: str, root: str) -> None:
    """Deletes ``path`` and the local folders ``ensure_parent`` made for it that it leaves
    empty, up to ``root``: a refused file leaves nothing behind."""
    FileSystems.delete([path])
    if "://" in path:
        return
    folder, root = posixpath.dirname(path), root.rstrip("/")
    while folder.startswith(root + "/"):
        try:
            os.rmdir(folder)  # only an empty folder: a concurrent upload's stays
        except OSError:
            return
        folder = posixpath.dirname(folder)


def write_atomically(path: str, data: bytes) -> None:
    """A temporary name, then a rename: a reader sees the whole file or none, and a write
    that fails (a full disk) leaves no temporary behind."""
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    ensure_parent(temporary)
    try:
        with FileSystems.create(temporary) as handle:
            handle.write(data)
        rename(temporary, path)
    except BaseException:
        if FileSystems.exists(temporary):
            FileSystems.delete([temporary])
        raise


def out_of_space(error: Optional[BaseException]) -> bool:
    """Whether a write failed for want of space (a full disk, a quota): the ``OSError`` of a
    file's write, or one behind it, as Beam's file operations wrap them (an ``IOError`` raised
    while handling it, a ``BeamIOError`` of each file's)."""
    if isinstance(error, BeamIOError) and error.exception_details:
        return any(map(out_of_space, error.exception_details.values()))
    if isinstance(error, OSError) and error.errno in _NO_SPACE:
        return True
    return error is not None and out_of_space(error.__context__)


def rename(source: str, destination: str) -> None:
    ensure_parent(destination)
    if FileSystems.exists(destination):
        FileSystems.delete([destination])
    FileSystems.rename([source], [destination])


def read_bytes(path: str) -> Optional[bytes]:
    """The file's bytes as stored (a ``.bz2`` package is not decompressed), None if absent."""
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        return handle.read()


def delete_tree(path: str) -> None:
    """Deletes a folder and what it holds (a prefix on object stores), if there is any."""
    pattern = join(path, "**")
    matched = [item.path for item in FileSystems.match([pattern])[0].metadata_list]
    if matched:
        FileSystems.delete(matched)
    if "://" not in path and FileSystems.exists(path):
        FileSystems.delete([path])


class ProxyZone:
    """Paths of the Proxy Producer zone for one zones root."""

    def __init__(self, zones_root: str):
        self.root = join(zones_root, PROXY_PRODUCER)

    def partition(self, output_type: str, business_date: str, vacation_id: str) -> str:
        return join(self.root, output_type, f"business_date={business_date}",
                    f"vacation_id={vacation_id}")

    def staging(self, vacation_id: str, run_id: str) -> str:
        return join(self.root, "_staging", f"{vacation_id}.{run_id}")

    def commit_record_path(self, vacation_id: str) -> str:
        return join(self.root, "_vacations", f"{vacation_id}.json")

    def commit_record(self, vacation_id: str) -> Optional[dict[str, Any]]:
        """The published outcome of a vacation, or None when it was never published."""
        raw = read_bytes(self.commit_record_path(vacation_id))
        return json.loads(raw) if raw is not None else None
