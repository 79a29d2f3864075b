"""Streaming reader of a vacation archive: bzip2 and tar checked as the bytes come out.

Nothing here ever holds the archive or a member whole: the bzip2 stream is decompressed in a
background thread (``bz2`` releases the GIL) into a small bounded queue, the tar stream is read
sequentially, and every limit of spec 2.1 is enforced on the running totals, so a decompression
bomb stops after a few megabytes.
"""

from __future__ import annotations

import bz2
import dataclasses
import hashlib
import io
import posixpath
import queue
import tarfile
import threading
from collections.abc import Iterator
from typing import BinaryIO, Optional

from transforms.contract import Fatal, Limits, VacationError
from transforms.facts import Digest

_READ_SIZE = 1 << 20  # compressed bytes read per step
_CHUNK_SIZE = 1 << 20  # most uncompressed bytes produced per step
_PREFETCH = 8  # chunks decompressed ahead of the consumer
_REGULAR_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE)
_DONE = object()


class _Stop(Exception):
    """The consumer went away; the producer thread ends quietly."""


class Bz2Reader(io.RawIOBase):
    """A file object over the decompressed bytes of a single- or multi-stream bzip2 file.

    Decompression runs ahead in a thread so that it overlaps with the consumer's parsing on
    another core; errors surface as ``VacationError`` at the consumer's next read.
    """

    def __init__(self, source: BinaryIO, limits: Limits):
        super().__init__()
        self._source = source
        self._limits = limits
        self._queue: queue.Queue[object] = queue.Queue(maxsize=_PREFETCH)
        self._stopping = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._chunk = memoryview(b"")
        self._eof = False
        self.compressed_bytes = 0
        self.uncompressed_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._chunk:
            if self._eof:
                return 0
            self._next_chunk()
        size = min(len(buffer), len(self._chunk))
        buffer[:size] = self._chunk[:size]
        self._chunk = self._chunk[size:]
        return size

    def read_chunk(self) -> bytes:
        """The next piece of decompressed data, of whatever size came out (b'' at the end)."""
        while not self._chunk:
            if self._eof:
                return b""
            self._next_chunk()
        chunk, self._chunk = self._chunk, memoryview(b"")
        return bytes(chunk)

    def close(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            while self._thread.is_alive():
                try:
                    self._queue.get(timeout=0.1)
                except queue.Empty:
                    pass
            self._thread = None
        super().close()

    def _next_chunk(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._produce, name="bz2-reader", daemon=True)
            self._thread.start()
        item = self._queue.get()
        if item is _DONE:
            self._eof = True
        elif isinstance(item, BaseException):
            self._eof = True
            raise item
        else:
            self._chunk = memoryview(item)

    def _put(self, item: object) -> None:
        while True:
            if self._stopping.is_set():
                raise _Stop()
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _produce(self) -> None:
        try:
            for chunk in self._decompress():
                self._put(chunk)
            self._put(_DONE)
        except _Stop:
            return
        except VacationError as error:
            self._try_put(error)
        except Exception as error:  # an I/O failure of the source: the platform's, not the sender's
            self._try_put(error)

    def _try_put(self, item: object) -> None:
        try:
            self._put(item)
        except _Stop:
            pass

    def _read_source(self) -> bytes:
        data = self._source.read(_READ_SIZE)
        self.compressed_bytes += len(data)
        return data

    def _decompress(self) -> Iterator[bytes]:
        data = self._read_source()
        if not data.startswith(b"BZh"):
            raise VacationError(Fatal.NOT_BZIP2, "the file does not start with a bzip2 header")
        streams = 0
        while data:
            streams += 1
            decompressor = bz2.BZ2Decompressor()
            try:
                while not decompressor.eof:
                    if decompressor.needs_input:
                        if not data:
                            data = self._read_source()
                            if not data:
                                raise VacationError(
                                    Fatal.CORRUPT_ARCHIVE,
                                    f"bzip2 stream {streams} is truncated",
                                )
                        out = decompressor.decompress(data, _CHUNK_SIZE)
                    else:
                        out = decompressor.decompress(b"", _CHUNK_SIZE)
                    data = b""
                    if out:
                        self._account(len(out))
                        yield out
            except (OSError, EOFError) as error:
                raise VacationError(
                    Fatal.CORRUPT_ARCHIVE, f"bzip2 stream {streams} is damaged: {error}"
                ) from None
            data = decompressor.unused_data or self._read_source()
            while data and len(data) < 3:
                more = self._read_source()
                if not more:
                    break
                data += more
            if data and not data.startswith(b"BZh"):
                raise VacationError(
                    Fatal.CORRUPT_ARCHIVE, f"data after bzip2 stream {streams} is not bzip2"
                )

    def _account(self, produced: int) -> None:
        self.uncompressed_bytes += produced
        limits = self._limits
        if self.uncompressed_bytes > limits.max_uncompressed_bytes:
            raise VacationError(
                Fatal.LIMIT_EXCEEDED,
                f"more than {limits.max_uncompressed_bytes} uncompressed bytes",
            )
        if (self.uncompressed_bytes > limits.ratio_after_bytes
                and self.uncompressed_bytes > limits.max_ratio * max(self.compressed_bytes, 1)):
            raise VacationError(
                Fatal.LIMIT_EXCEEDED,
                f"compression ratio above {limits.max_ratio:g} "
                f"({self.uncompressed_bytes} bytes out of {self.compressed_bytes})",
            )


@dataclasses.dataclass
class Member:
    """One member of the archive, readable once, in order."""

    name: str  # the name without the vacation folder
    size: int
    fileobj: BinaryIO


class DigestingReader:
    """Reads a member in chunks while counting and hashing it, for the checks against META."""

    def __init__(self, member: Member, chunk_size: int = 4 << 20):
        self._member = member
        self._chunk_size = chunk_size
        self._hash = hashlib.sha256()
        self._bytes = 0

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                chunk = self._member.fileobj.read(self._chunk_size)
            except tarfile.ReadError as error:
                raise VacationError(
                    Fatal.CORRUPT_ARCHIVE, f"{self._member.name}: tar data damaged: {error}"
                ) from None
            if not chunk:
                return
            self._hash.update(chunk)
            self._bytes += len(chunk)
            yield chunk

    def read_all(self, most: int) -> bytes:
        """The whole member, for the small ones (META, MONITOR), refusing more than ``most``."""
        if self._member.size > most:
            raise VacationError(
                Fatal.LIMIT_EXCEEDED, f"{self._member.name} is larger than {most} bytes"
            )
        return b"".join(self)

    def digest(self) -> Digest:
        """What was measured of the member so far: all of it once it is read."""
        return Digest(self._bytes, self._hash.hexdigest())


def iter_members(source: BinaryIO, vacation_id: str, limits: Limits) -> Iterator[Member]:
    """Yields the regular members of a vacation archive, refusing anything unsafe (spec 1.1).

    Each member must be read (or skipped) before the next one is asked for.
    """
    reader = Bz2Reader(source, limits)
    try:
        try:
            tar = tarfile.open(fileobj=reader, mode="r|")
        except tarfile.ReadError as error:
            raise VacationError(Fatal.CORRUPT_ARCHIVE, f"not a tar stream: {error}") from None
        seen: set[str] = set()
        layout: Optional[str] = None  # "root" or "folder", fixed by the first member
        count = 0
        while True:
            try:
                info = tar.next()
            except (tarfile.ReadError, EOFError) as error:
                raise VacationError(
                    Fatal.CORRUPT_ARCHIVE, f"tar stream damaged after {count} members: {error}"
                ) from None
            if info is None:
                break
            count += 1
            if count > limits.max_members:
                raise VacationError(
                    Fatal.LIMIT_EXCEEDED, f"more than {limits.max_members} members"
                )
            name, layout = _checked_name(info, vacation_id, layout)
            if name is None:  # the vacation folder itself
                continue
            if name in seen:
                raise VacationError(Fatal.UNSAFE_MEMBER, f"{info.name}: the name repeats")
            seen.add(name)
            yield Member(name, info.size, tar.extractfile(info))
        _drain(reader)
    finally:
        reader.close()


def _checked_name(
    info: tarfile.TarInfo, vacation_id: str, layout: Optional[str]
) -> tuple[Optional[str], str]:
    raw = info.name
    if raw.startswith("/") or "\\" in raw or any(part == ".." for part in raw.split("/")):
        raise VacationError(Fatal.UNSAFE_MEMBER, f"{raw}: absolute or escaping path")
    normal = posixpath.normpath(raw)
    parts = normal.split("/")
    if info.isdir():
        if parts == [vacation_id] and layout in (None, "folder"):
            return None, "folder"
        raise VacationError(Fatal.UNSAFE_MEMBER, f"{raw}: unexpected directory")
    if info.type not in _REGULAR_TYPES:
        kind = "link" if (info.issym() or info.islnk()) else "special file"
        raise VacationError(Fatal.UNSAFE_MEMBER, f"{raw}: a {kind}, not a regular file")
    if len(parts) == 1:
        found = "root"
    elif len(parts) == 2 and parts[0] == vacation_id:
        found = "folder"
    else:
        raise VacationError(
            Fatal.UNSAFE_MEMBER, f"{raw}: not at the root nor under the folder {vacation_id}/"
        )
    if layout is not None and layout != found:
        raise VacationError(
            Fatal.UNSAFE_MEMBER, f"{raw}: members mix the archive root and a folder"
        )
    return parts[-1], found


def _drain(reader: Bz2Reader) -> None:
    """Reads past the tar end so that a damaged or truncated bzip2 tail is still caught."""
    while reader.read_chunk():
        pass
