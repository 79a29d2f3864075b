"""The upload door's look at META.json while an archive is still arriving.

An archive sent under another vacation's name (the archive of ``BAF_20261122_03`` sent as
``BAF_20261122_04.tar.bz2``) would land and queue under the wrong vacation. When META.json is
the archive's first member, as the generator and the contract's one-pass reading want it, its
``vacation_id`` is known after the first bytes: the door refuses the upload then, before
anything lands. Anything else (META later in the archive, a damaged stream, an invalid META) is
the ingest's to judge: this is no substitute for the full check.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from typing import Optional

from transforms.archive import iter_members
from transforms.contract import Fatal, Limits, VacationError, VacationName
from transforms.vacation_reader import read_meta_json

# META.json may be up to 4 MiB; past this many compressed bytes the probe gives up
_MOST_COMPRESSED = 8 << 20


class _Feed:
    """The compressed bytes handed over by the event loop, read (blocking) by the bzip2
    reader's thread; empty bytes once ended."""

    def __init__(self) -> None:
        self._chunks: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._ended = False
        self.fed = 0

    def put(self, chunk: bytes) -> None:
        if not self._ended:
            self.fed += len(chunk)
            self._chunks.put(chunk)

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self._chunks.put(b"")

    def read(self, size: int = -1) -> bytes:
        chunk = self._chunks.get()
        if not chunk:
            self._chunks.put(b"")  # every later read sees the end too
        return chunk


class MetaProbe:
    """Reads the vacation id of a first META.json member from an upload as it streams in.

    ``feed`` each chunk received, then ``finish``; both raise ``VacationError``
    (``VACATION_ID_MISMATCH``) as soon as META names another vacation than ``name``. The archive
    is read by ``transforms.archive`` in a thread of the probe's own, so the event loop never
    waits on decompression.
    """

    def __init__(self, name: VacationName, limits: Limits = Limits()):
        self._name = name
        self._limits = limits
        self._feed = _Feed()
        self._declared: concurrent.futures.Future[Optional[str]] = concurrent.futures.Future()
        threading.Thread(target=self._read, name=f"meta-probe-{name.vacation_id}",
                         daemon=True).start()

    def __enter__(self) -> MetaProbe:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._feed.end()  # the thread ends on its own once it reads the end

    def feed(self, chunk: bytes) -> None:
        if self._declared.done():
            self._check(self._declared.result())
        elif self._feed.fed < _MOST_COMPRESSED:
            self._feed.put(chunk)
        else:
            self._feed.end()

    async def finish(self) -> None:
        """Waits for the probe's answer once the whole upload is received."""
        self._feed.end()
        self._check(await asyncio.wrap_future(self._declared))

    def _check(self, declared: Optional[str]) -> None:
        if declared is not None and declared != self._name.vacation_id:
            raise VacationError(Fatal.VACATION_ID_MISMATCH,
                                f"META.json says vacation_id {declared!r}, the file name "
                                f"{self._name.vacation_id!r}")

    def _read(self) -> None:
        members = iter_members(self._feed, self._name.vacation_id, self._limits)
        try:
            first = next(members, None)
            meta = read_meta_json(first) if first and first.name == "META.json" else None
            declared = meta.get("vacation_id") if isinstance(meta, dict) else None
            self._declared.set_result(declared if isinstance(declared, str) else None)
        except VacationError:  # not for the door to judge: the ingest says why
            self._declared.set_result(None)
        except Exception as error:  # noqa: BLE001 - a bug: the upload fails with it
            self._declared.set_exception(error)
        finally:
            self._feed.end()  # before closing the reader, whose thread may wait on the feed
            members.close()
