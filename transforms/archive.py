"""Streaming reader of a vacation archive: bzip2 and tar checked as the bytes come out.

Nothing here ever holds the archive or a member whole: the bzip2 stream is decompressed in a
background thread into a small bounded queue, the tar stream is read sequentially, and every
limit of spec 2.1 is enforced on the running totals, so a decompression bomb stops after a few
megabytes.

bzip2 blocks (900 kB each) are independent, so with more than one core the blocks are decoded
on several threads at once (``indexed_bzip2``, lbzip2's method: blocks found by their 48-bit
magic, decoded in parallel, given back in order, a bounded number ahead). With one core, or
``threads=1``, Python's own ``bz2`` decodes the one stream after the other: the reference.
"""

from __future__ import annotations

import bz2
import dataclasses
import hashlib
import io
import os
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
_END_OF_STREAM = 0x177245385090  # the 48-bit magic that ends every bzip2 stream, then its CRC
_TAIL_BYTES = 11  # magic (48 bits) + CRC (32 bits) + up to 7 bits of padding


def decoder_threads() -> int:
    """bzip2 decoder threads for this process: one per core it may run on."""
    return len(os.sched_getaffinity(0))


class _Stop(Exception):
    """The consumer went away; the producer thread ends quietly."""


class Bz2Reader(io.RawIOBase):
    """A file object over the decompressed bytes of a single- or multi-stream bzip2 file.

    Decompression runs ahead in a thread so that it overlaps with the consumer's parsing on
    another core; errors surface as ``VacationError`` at the consumer's next read. With
    ``threads`` above one (and a seekable source), the blocks are decoded on that many threads.
    """

    def __init__(self, source: BinaryIO, limits: Limits, threads: int = 1):
        super().__init__()
        if threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        self._source = source
        self._limits = limits
        seekable = getattr(source, "seekable", None)
        self._threads = threads if threads > 1 and seekable and seekable() else 1
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
        decompress = self._decompress if self._threads == 1 else self._decompress_in_parallel
        try:
            for chunk in decompress():
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

    def _decompress_in_parallel(self) -> Iterator[bytes]:
        import indexed_bzip2  # only where there are cores to spread the blocks over

        if not self._source.read(3).startswith(b"BZh"):
            raise VacationError(Fatal.NOT_BZIP2, "the file does not start with a bzip2 header")
        self._check_tail()
        try:
            with indexed_bzip2.open(self._source, parallelization=self._threads) as decoder:
                while out := decoder.read(_CHUNK_SIZE):
                    # bits consumed so far (0 once at the end, when the source's size is right)
                    self.compressed_bytes = max(self.compressed_bytes,
                                                decoder.tell_compressed() // 8)
                    self._account(len(out))
                    yield out
        except (RuntimeError, ValueError, OSError) as error:
            raise VacationError(Fatal.CORRUPT_ARCHIVE, f"bzip2 data damaged: {error}") from None

    def _check_tail(self) -> None:
        """The archive must end on a stream's end: ``indexed_bzip2`` would ignore what follows
        it (or stop at a truncation with no word of where), which ``bz2`` refuses. Leaves the
        source at its start."""
        size = self._source.seek(0, io.SEEK_END)
        self._source.seek(max(size - _TAIL_BYTES, 0))
        tail = int.from_bytes(self._source.read(_TAIL_BYTES), "big")
        if not any(tail & ((1 << padding) - 1) == 0
                   and (tail >> (padding + 32)) & ((1 << 48) - 1) == _END_OF_STREAM
                   for padding in range(8)):
            raise VacationError(Fatal.CORRUPT_ARCHIVE, "the bzip2 data is truncated, or "
                                "followed by data that is not a bzip2 stream")
        self._source.seek(0)

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


def iter_members(source: BinaryIO, vacation_id: str, limits: Limits,
                 threads: int = 1) -> Iterator[Member]:
    """Yields the regular members of a vacation archive, refusing anything unsafe (spec 1.1).

    Each member must be read (or skipped) before the next one is asked for. ``threads``: the
    bzip2 decoder threads (``Bz2Reader``).
    """
    reader = Bz2Reader(source, limits, threads)
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
