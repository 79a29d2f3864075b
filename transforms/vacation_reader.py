"""One pass over a vacation archive: members checked against META, data cut into batches.

The archive is a single sequential stream, so this is the one place that sees every record in
order; it therefore also marks duplicate keys (spec 2.2: the first occurrence is kept). Fatal
errors end the pass at once: nothing after them is worth reading.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, BinaryIO, Optional, Protocol, Union, runtime_checkable

import pyarrow as pa
from pydantic import TypeAdapter, ValidationError

from transforms import contract, kernels
from transforms.archive import DigestingReader, Member, iter_members
from transforms.contract import Fatal, Limits, VacationError, VacationName
from transforms.csv_records import (
    BOM,
    BatchParser,
    ParsedBatch,
    RawBatch,
    RecordSplitter,
    parse_header,
)
from transforms.facts import FatalError, MemberDigest, Meta, Monitor, MonitorLine
from transforms.keys import KeyIndex

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

_LOG = logging.getLogger(__name__)
_SMALL_MEMBER = 4 << 20  # META.json and MONITOR.csv are a few kilobytes; refuse a flood
_INT = re.compile(r"^[0-9]+$")


Event = Union[ParsedBatch, Meta, Monitor, MemberDigest, FatalError]


@runtime_checkable
class ProgressBar(Protocol):
    """A bar the caller may show of the CSV read, in bytes (``pipelines.progress.Bar`` on a
    terminal): the contract's code draws nothing itself. It must pickle, as it travels with
    the reading DoFn."""

    def start(self, total: Optional[float] = None) -> None: ...

    def advance(self, amount: float = 1) -> None: ...

    @property
    def drawn(self) -> bool:
        """Whether the bar shows: when not, the reader logs its progress now and then."""


class VacationReader:
    """Reads one archive and yields, in order: ``Meta``, ``Monitor``, ``ParsedBatch``es, one
    ``MemberDigest`` per data member, and at most one ``FatalError``, always last.

    ``open_archive`` is called once, or twice when META.json is not the first member (the data
    members cannot be decoded before META gives their encoding). ``progress``, if any, is
    started at the CSV's total size and advanced as it is read. ``decoder_threads``: the
    threads that decode the bzip2 blocks (``transforms.archive.Bz2Reader``); ``native``: parse
    the records and index their keys with the compiled kernels (``transforms.kernels``).
    """

    def __init__(self, open_archive: Callable[[], BinaryIO], name: VacationName, limits: Limits,
                 chunk_bytes: int = 2 << 20, progress: Optional[ProgressBar] = None,
                 decoder_threads: int = 1, native: bool = False):
        self._native = native
        self._open = open_archive
        self._threads = decoder_threads
        self._name = name
        self._limits = limits
        self._chunk_bytes = chunk_bytes
        self._bar = progress

    def __iter__(self) -> Iterator[Event]:
        try:
            yield from self._events()
        except VacationError as error:
            yield FatalError(error.code, error.message)

    def _events(self) -> Iterator[Event]:
        """One pass when META.json is the first member, as the contract orders it; else a
        first pass finds META and a second reads the archive again from its start."""
        with self._open() as source:
            members = self._members(source)
            meta, first = self._find_meta(members)
            yield meta
            if first:
                yield from self._read(meta, members)
                return
        with self._open() as source:
            yield from self._read(meta, self._members(source))

    def _members(self, source: BinaryIO) -> Iterator[Member]:
        return iter_members(source, self._name.vacation_id, self._limits, self._threads)

    def _find_meta(self, members: Iterator[Member]) -> tuple[Meta, bool]:
        """META and whether it was the first member; the members before it are skipped (the
        data cannot be decoded before META gives its encoding)."""
        for position, member in enumerate(members):
            if member.name == "META.json":
                return self._meta(member), position == 0
            if position == 0:
                _LOG.info("%s: META.json is not the first member, reading the archive twice",
                          self._name.vacation_id)
        raise VacationError(Fatal.META_MISSING, "the archive has no META.json")

    def _read(self, meta: Meta, members: Iterator[Member]) -> Iterator[Event]:
        listed = {entry.name: entry for entry in meta.members}
        encoding = contract.ENCODINGS[meta.encoding]
        index = kernels.KeyIndex if self._native else KeyIndex
        keys = {kind: index() for kind in contract.DATA_TYPES}
        monitor: Optional[Monitor] = None
        seen: set[str] = set()
        progress = _Progress(self._name.vacation_id, self._bar, sum(
            entry.digest.bytes for entry in meta.members if entry.kind in contract.DATA_TYPES))
        for member in members:
            if member.name == "META.json":
                continue
            entry = listed.get(member.name)
            if entry is None:
                raise VacationError(Fatal.MEMBER_UNEXPECTED,
                                    f"{member.name} is in the archive but not in META")
            seen.add(member.name)
            reader = DigestingReader(member, self._chunk_bytes)
            if entry.kind == contract.MONITOR:
                monitor = _parse_monitor(reader.read_all(_SMALL_MEMBER), encoding, listed)
                yield monitor
            else:
                records = yield from self._data_member(member, entry.kind, reader, encoding,
                                                       keys[entry.kind], progress)
                yield MemberDigest(member.name, entry.kind, records, reader.digest())
            _check_digest(member.name, reader, entry)
        missing = sorted(set(listed) - seen)
        if missing:
            raise VacationError(Fatal.MEMBER_MISSING,
                                f"listed in META but not in the archive: {', '.join(missing)}")
        if monitor is None:
            raise VacationError(Fatal.MONITOR_MISSING, "the archive has no MONITOR.csv")
        progress.done()

    def _data_member(self, member: Member, kind: str, reader: DigestingReader, encoding: str,
                     keys: KeyIndex | kernels.KeyIndex, progress: _Progress
                     ) -> Iterator[Event]:
        splitter = RecordSplitter(native=self._native)
        parser = BatchParser(member.name, kind, contract.COLUMNS[kind], self._native)
        header: Optional[list[str]] = None
        records = 0
        first = True
        for chunk in reader:
            progress.advance(len(chunk))
            if first:
                chunk, first = chunk.removeprefix(BOM), False
            if encoding != "utf-8":
                chunk = chunk.decode(encoding).encode("utf-8")
            raw = splitter.feed(chunk)
            if raw is not None and header is None:
                header, raw = _check_header(member.name, kind, raw)
            if raw is not None and len(raw):
                records += len(raw)
                yield self._with_duplicates(parser.parse(raw), keys)
        last = splitter.close()
        if last is not None and header is None:
            header, last = _check_header(member.name, kind, last)
        if header is None:
            raise VacationError(Fatal.HEADER_MISMATCH, f"{member.name} is empty: no header")
        if last is not None and len(last):
            records += len(last)
            yield self._with_duplicates(parser.parse(last), keys)
        return records

    @staticmethod
    def _with_duplicates(batch: ParsedBatch, keys: KeyIndex | kernels.KeyIndex) -> ParsedBatch:
        columns = [batch.table[name] for name in contract.KEYS[batch.kind]]
        duplicate = keys.mark(columns)
        batch.table = batch.table.append_column("duplicate", pa.array(duplicate))
        return batch

    def _meta(self, member: Member) -> Meta:
        return parse_meta(read_meta_json(member), self._name)


def read_meta_json(member: Member) -> object:
    """The JSON value of the META.json member, not yet checked against spec 1.2."""
    raw = DigestingReader(member).read_all(_SMALL_MEMBER)
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise VacationError(Fatal.META_INVALID, f"META.json is not UTF-8 JSON: {error}") \
            from None


def _check_header(member_name: str, kind: str, raw: RawBatch) -> tuple[list[str], RawBatch]:
    header = parse_header(raw.record(0), "utf-8")
    expected = list(contract.COLUMNS[kind])
    if header != expected:
        raise VacationError(
            Fatal.HEADER_MISMATCH,
            f"{member_name}: header {';'.join(header)!r}, expected {';'.join(expected)!r}",
        )
    start = int(raw.starts[1])
    rest = RawBatch(raw.data[start:], raw.starts[1:] - start, raw.first_record + 1, raw.lines[1:])
    return header, rest


def _check_digest(name: str, reader: DigestingReader, entry: MemberDigest) -> None:
    digest, declared = reader.digest(), entry.digest
    if digest != declared:
        raise VacationError(
            Fatal.CHECKSUM_MISMATCH,
            f"{name}: {digest.bytes} bytes, sha256 {digest.sha256}; META says "
            f"{declared.bytes} bytes, sha256 {declared.sha256}",
        )


# META_INVALID's messages (spec 1.2), by the field that breaks its rule in ``Meta``'s
# annotations: first those missing or of another type, then the others in this order
_TYPED = {"vacation_id": "str", "sender": "str", "business_date": "str", "produced_at": "str",
          "format_version": "str", "members": "list"}
_TYPE_ERRORS = ("missing", "string_type", "tuple_type")
_ENTRY = "members entry {entry!r}: name and a type MONITOR, CRE or GESPARAM"
_RULES = {
    "slot": f"slot must be an int from 1 to {contract.SLOTS_PER_DAY}",
    "sender": f"sender must be {contract.SENDER}",
    "format_version": f"format_version must be {contract.FORMAT_VERSION}",
    "encoding": f"encoding must be one of {', '.join(contract.ENCODINGS)}",
    "business_date": "business_date is not a date YYYY-MM-DD",
    "produced_at": "produced_at is not an ISO 8601 timestamp with offset",
    "name": _ENTRY,
    "type": _ENTRY,
    "records": "{name}: records must be an int >= 0",
    "bytes": "{name}: bytes must be an int >= 0",
    "sha256": "{name}: sha256 must be 64 lower-case hex digits",
}


@functools.cache
def _meta_model() -> TypeAdapter[Meta]:
    """Built at the first META read, not at import: most ``cre`` commands read none."""
    return TypeAdapter(Meta)


def parse_meta(meta: object, name: VacationName) -> Meta:
    """META.json's JSON value as ``Meta``, which pydantic checks against spec 1.2; its vacation
    id, date and slot must also agree with the file name."""
    try:
        parsed = _meta_model().validate_python(meta)
    except ValidationError as error:
        first = min(error.errors(include_url=False), key=_checked_before)
        raise VacationError(Fatal.META_INVALID, f"META.json: {_message(first, meta)}") \
            from None
    if parsed.vacation_id != name.vacation_id:
        raise VacationError(Fatal.VACATION_ID_MISMATCH,
                            f"META vacation_id {parsed.vacation_id!r}, file {name.vacation_id!r}")
    if parsed.business_date != name.business_date or parsed.slot != name.slot:
        raise VacationError(
            Fatal.VACATION_ID_MISMATCH,
            f"META says {parsed.business_date} slot {parsed.slot}, the file name "
            f"{name.business_date} slot {name.slot}",
        )
    return parsed


def _checked_before(error: ErrorDetails) -> tuple[int, int]:
    """Of several errors, the one told is always the same: a field missing or of another type,
    then a field's value in ``_RULES``' order, then the members entries in theirs."""
    loc = error["loc"]
    if len(loc) > 1:
        return 2, int(loc[1])
    field = str(loc[0]) if loc else ""
    if field in _TYPED and error["type"] in _TYPE_ERRORS:
        return 0, list(_TYPED).index(field)
    return 1, list(_RULES).index(field) if field in _RULES else len(_RULES)


def _message(error: ErrorDetails, meta: object) -> str:
    """The words of the checks META had before pydantic, which senders' reports quote."""
    loc = error["loc"]
    if not loc:
        return "not a JSON object"
    field = loc[-1]
    if len(loc) == 1 and field in _TYPED and error["type"] in _TYPE_ERRORS:
        return f"{field} is missing or not a {_TYPED[field]}"
    if field in _RULES:
        entry = meta["members"][loc[1]] if len(loc) > 1 else {}  # type: ignore[index]
        return _RULES[str(field)].format(entry=entry, name=entry.get("name"))
    if error["type"] == "dataclass_type":
        return "a members entry is not an object"
    return str(error["ctx"]["error"])  # a rule over several fields, which says it all


def _parse_monitor(raw: bytes, encoding: str, listed: dict[str, MemberDigest]) -> Monitor:
    """MONITOR.csv (spec 1.3): any broken line makes the whole file invalid."""

    def invalid(message: str) -> VacationError:
        return VacationError(Fatal.MONITOR_INVALID, f"MONITOR.csv: {message}")

    try:
        text = raw.removeprefix(BOM).decode(encoding)
    except UnicodeDecodeError:
        raise invalid(f"not valid {encoding}") from None
    rows = list(csv.reader(text.splitlines(), delimiter=";"))
    if not rows or [name.strip().lower() for name in rows[0]] != list(contract.MONITOR_COLUMNS):
        raise invalid(f"the header must be {';'.join(contract.MONITOR_COLUMNS)}")
    data_members = {name for name, entry in listed.items() if entry.kind != contract.MONITOR}
    lines: list[MonitorLine] = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(contract.MONITOR_COLUMNS):
            raise invalid(f"line {number}: {len(row)} columns, expected 4")
        member_name, kind, count, total = row
        if member_name not in data_members or listed[member_name].kind != kind:
            raise invalid(f"line {number}: {member_name!r} is not a {kind} member of this vacation")
        if not _INT.match(count):
            raise invalid(f"line {number}: record_count {count!r} is not an int >= 0")
        amount = None
        if kind == contract.CRE:
            if not re.match(contract.DECIMAL_PATTERN.replace("{1,16}", "+"), total):
                raise invalid(f"line {number}: amount_sum {total!r} is not a decimal")
            try:
                amount = Decimal(total)
            except InvalidOperation:
                raise invalid(f"line {number}: amount_sum {total!r}") from None
        elif total:
            raise invalid(f"line {number}: amount_sum is only for CRE members")
        lines.append(MonitorLine(member_name, kind, int(count), amount))
    covered = [line.member_name for line in lines]
    if sorted(covered) != sorted(data_members):
        raise invalid("there must be exactly one line per data member")
    return Monitor(tuple(lines))


class _Progress:
    """How much of the archive's CSV is read: the caller's bar when it shows, else a log line
    every few seconds, so a long run shows it is alive."""

    def __init__(self, vacation_id: str, bar: Optional[ProgressBar], total_bytes: int,
                 every: float = 10.0):
        self._vacation_id = vacation_id
        self._every = every
        self._start = self._last = time.monotonic()
        self._read = 0
        self._bar = bar
        if bar is not None:
            bar.start(total_bytes)

    def advance(self, read: int) -> None:
        self._read += read
        if self._bar is not None:
            self._bar.advance(read)
        now = time.monotonic()
        shown = self._bar is not None and self._bar.drawn
        if not shown and now - self._last >= self._every:
            self._last = now
            _LOG.info("%s: %.0f MB of CSV read in %.0f s", self._vacation_id, self._read / 1e6,
                      now - self._start)

    def done(self) -> None:
        _LOG.info("%s: archive read in %.1f s", self._vacation_id, time.monotonic() - self._start)
