"""One pass over a vacation archive: members checked against META, data cut into batches.

The archive is a single sequential stream, so this is the one place that sees every record in
order; it therefore also marks duplicate keys (spec 2.2: the first occurrence is kept). Fatal
errors end the pass at once: nothing after them is worth reading.
"""

from __future__ import annotations

import csv
import datetime
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from typing import BinaryIO, Optional, Union

import pyarrow as pa

from transforms import contract
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
from transforms.facts import FatalError, MemberDigest, Meta, MetaMember, Monitor, MonitorLine
from transforms.keys import KeyIndex
from transforms.progress import BYTES, Bar

_LOG = logging.getLogger(__name__)
_SMALL_MEMBER = 4 << 20  # META.json and MONITOR.csv are a few kilobytes; refuse a flood
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_INT = re.compile(r"^[0-9]+$")


Event = Union[ParsedBatch, Meta, Monitor, MemberDigest, FatalError]


class VacationReader:
    """Reads one archive and yields, in order: ``Meta``, ``Monitor``, ``ParsedBatch``es, one
    ``MemberDigest`` per data member, and at most one ``FatalError``, always last.

    ``open_archive`` is called once, or twice when META.json is not the first member (the data
    members cannot be decoded before META gives their encoding).
    """

    def __init__(self, open_archive: Callable[[], BinaryIO], name: VacationName, limits: Limits,
                 chunk_bytes: int = 2 << 20):
        self._open = open_archive
        self._name = name
        self._limits = limits
        self._chunk_bytes = chunk_bytes

    def __iter__(self) -> Iterator[Event]:
        try:
            meta = self._find_meta_first()
            yield meta
            yield from self._read(meta)
        except VacationError as error:
            yield FatalError(error.code, error.message)

    def _find_meta_first(self) -> Meta:
        """META when it is the first member, else found by a first pass that skips the data."""
        with self._open() as source:
            for member in iter_members(source, self._name.vacation_id, self._limits):
                if member.name == "META.json":
                    return self._meta(member)
                if member.name and contract.member_type(member.name) is not None:
                    _LOG.info("%s: META.json is not the first member, reading the archive twice",
                              self._name.vacation_id)
                    break
            else:
                raise VacationError(Fatal.META_MISSING, "the archive has no META.json")
        with self._open() as source:
            for member in iter_members(source, self._name.vacation_id, self._limits):
                if member.name == "META.json":
                    return self._meta(member)
        raise VacationError(Fatal.META_MISSING, "the archive has no META.json")

    def _read(self, meta: Meta) -> Iterator[Event]:
        listed = {entry.name: entry for entry in meta.members}
        encoding = contract.ENCODINGS[meta.encoding]
        keys = {kind: KeyIndex() for kind in contract.DATA_TYPES}
        monitor: Optional[Monitor] = None
        seen: set[str] = set()
        progress = _Progress(self._name.vacation_id, sum(
            entry.bytes for entry in meta.members if entry.kind in contract.DATA_TYPES))
        with self._open() as source:
            for member in iter_members(source, self._name.vacation_id, self._limits):
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
                    records = yield from self._data_member(member, entry.kind, reader,
                                                           encoding, keys[entry.kind], progress)
                    digest = reader.digest()
                    yield MemberDigest(member.name, entry.kind, records, digest.bytes,
                                       digest.sha256)
                _check_digest(member.name, reader, entry)
        missing = sorted(set(listed) - seen)
        if missing:
            raise VacationError(Fatal.MEMBER_MISSING,
                                f"listed in META but not in the archive: {', '.join(missing)}")
        if monitor is None:
            raise VacationError(Fatal.MONITOR_MISSING, "the archive has no MONITOR.csv")
        progress.done()

    def _data_member(self, member: Member, kind: str, reader: DigestingReader, encoding: str,
                     keys: KeyIndex, progress: _Progress) -> Iterator[Event]:
        splitter = RecordSplitter()
        parser = BatchParser(member.name, kind, contract.COLUMNS[kind])
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
    def _with_duplicates(batch: ParsedBatch, keys: KeyIndex) -> ParsedBatch:
        columns = [batch.table[name] for name in contract.KEYS[batch.kind]]
        duplicate = keys.mark(columns)
        batch.table = batch.table.append_column("duplicate", pa.array(duplicate))
        return batch

    def _meta(self, member: Member) -> Meta:
        meta = read_meta_json(member)
        validate_meta(meta, self._name)
        return Meta.from_json(meta)


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


def _check_digest(name: str, reader: DigestingReader, entry: MetaMember) -> None:
    digest = reader.digest()
    if digest.bytes != entry.bytes or digest.sha256 != entry.sha256:
        raise VacationError(
            Fatal.CHECKSUM_MISMATCH,
            f"{name}: {digest.bytes} bytes, sha256 {digest.sha256}; META says "
            f"{entry.bytes} bytes, sha256 {entry.sha256}",
        )


def validate_meta(meta: object, name: VacationName) -> None:
    """Spec 1.2; the vacation id, date and slot must also agree with the file name."""

    def invalid(message: str) -> VacationError:
        return VacationError(Fatal.META_INVALID, f"META.json: {message}")

    if not isinstance(meta, dict):
        raise invalid("not a JSON object")
    for field, kind in (("vacation_id", str), ("sender", str), ("business_date", str),
                        ("produced_at", str), ("format_version", str), ("members", list)):
        if not isinstance(meta.get(field), kind):
            raise invalid(f"{field} is missing or not a {kind.__name__}")
    slot = meta.get("slot")
    if not isinstance(slot, int) or isinstance(slot, bool) or not 1 <= slot <= 6:
        raise invalid("slot must be an int from 1 to 6")
    if meta["sender"] != contract.SENDER:
        raise invalid(f"sender must be {contract.SENDER}")
    if meta["format_version"] != contract.FORMAT_VERSION:
        raise invalid(f"format_version must be {contract.FORMAT_VERSION}")
    if meta.get("encoding", contract.DEFAULT_ENCODING) not in contract.ENCODINGS:
        raise invalid(f"encoding must be one of {', '.join(contract.ENCODINGS)}")
    try:
        datetime.date.fromisoformat(meta["business_date"])
        if not re.match(r"^\d{4}-\d{2}-\d{2}$", meta["business_date"]):
            raise ValueError(meta["business_date"])
    except ValueError:
        raise invalid("business_date is not a date YYYY-MM-DD") from None
    try:
        if datetime.datetime.fromisoformat(meta["produced_at"]).tzinfo is None:
            raise ValueError("no offset")
    except ValueError:
        raise invalid("produced_at is not an ISO 8601 timestamp with offset") from None
    names: set[str] = set()
    for entry in meta["members"]:
        _validate_meta_member(entry, names, invalid)
    if not any(entry["type"] == contract.CRE for entry in meta["members"]):
        raise invalid("no CRE member is listed")
    if meta["vacation_id"] != name.vacation_id:
        raise VacationError(Fatal.VACATION_ID_MISMATCH,
                            f"META vacation_id {meta['vacation_id']!r}, file {name.vacation_id!r}")
    if meta["business_date"] != name.business_date or slot != name.slot:
        raise VacationError(
            Fatal.VACATION_ID_MISMATCH,
            f"META says {meta['business_date']} slot {slot}, the file name "
            f"{name.business_date} slot {name.slot}",
        )


def _validate_meta_member(entry: object, names: set[str], invalid) -> None:
    if not isinstance(entry, dict):
        raise invalid("a members entry is not an object")
    name, kind = entry.get("name"), entry.get("type")
    if not isinstance(name, str) or kind not in (contract.MONITOR, *contract.DATA_TYPES):
        raise invalid(f"members entry {entry!r}: name and a type MONITOR, CRE or GESPARAM")
    if contract.member_type(name) != kind:
        raise invalid(f"members entry {name!r} does not match the pattern of type {kind}")
    if name in names:
        raise invalid(f"{name} is listed twice")
    names.add(name)
    for field in ("records", "bytes"):
        value = entry.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise invalid(f"{name}: {field} must be an int >= 0")
    if not isinstance(entry.get("sha256"), str) or not _SHA256.match(entry["sha256"]):
        raise invalid(f"{name}: sha256 must be 64 lower-case hex digits")


def _parse_monitor(raw: bytes, encoding: str, listed: dict[str, MetaMember]) -> Monitor:
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
    """How much of the archive's CSV is read: a bar when the command draws bars in this
    process, else a log line every few seconds, so a long run shows it is alive."""

    def __init__(self, vacation_id: str, total_bytes: int, every: float = 10.0):
        self._vacation_id = vacation_id
        self._every = every
        self._start = self._last = time.monotonic()
        self._read = 0
        self._bar = Bar(f"{vacation_id} CSV", BYTES)
        self._bar.start(total_bytes)

    def advance(self, read: int) -> None:
        self._read += read
        self._bar.advance(read)
        now = time.monotonic()
        if not self._bar.drawn and now - self._last >= self._every:
            self._last = now
            _LOG.info("%s: %.0f MB of CSV read in %.0f s", self._vacation_id, self._read / 1e6,
                      now - self._start)

    def done(self) -> None:
        _LOG.info("%s: archive read in %.1f s", self._vacation_id, time.monotonic() - self._start)
