"""CSV members (spec 1.3) cut into batches of whole records and parsed into Arrow columns.

The hot path never loops over records in Python: record boundaries come from numpy (a line feed
ends a record when the count of quotes before it is even), fields from Arrow's C++ CSV parser,
and the few records that break the rules are picked out by vector masks. Python's ``csv`` module
only sees a batch in which Arrow and the quote parity disagree (stray quotes), which is rare.
With ``native``, the compiled kernels (``transforms.kernels``) find the boundaries and split the
fields instead; a batch they cannot read as Arrow would (stray quotes or carriage returns) is
parsed this module's way.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
from collections.abc import Sequence
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from transforms import kernels
from transforms.contract import RecordCode

_QUOTE, _LF, _SEMI, _CR = ord('"'), ord("\n"), ord(";"), ord("\r")
BOM = b"\xef\xbb\xbf"

REJECT_SCHEMA = pa.schema(
    [
        ("member_name", pa.string()),
        ("record_number", pa.int64()),
        ("line_number", pa.int64()),
        ("error_code", pa.string()),
        ("error_message", pa.string()),
        ("raw", pa.string()),
    ]
)


@dataclasses.dataclass
class RawBatch:
    """Whole records of one member: ``data[starts[i]:starts[i + 1]]`` is record ``i``."""

    data: bytes
    starts: np.ndarray  # int64, one more than the records
    first_record: int  # record number of the first record (the header is record 0)
    lines: np.ndarray  # int64 physical line number where each record starts

    def __len__(self) -> int:
        return len(self.starts) - 1

    def record(self, index: int) -> bytes:
        return self.data[self.starts[index] : self.starts[index + 1]]


class RecordSplitter:
    """Cuts a member's byte stream into ``RawBatch``es at record boundaries.

    A record longer than ``max_record_bytes`` can only come from an unbalanced quote; rather than
    buffering the rest of the member, the splitter then ends that record at its first line feed,
    so memory stays bounded and the record is rejected by the parser.
    """

    def __init__(self, max_record_bytes: int = 1 << 20, native: bool = False):
        self._native = native
        self._pending = b""
        self._next_record = 0
        self._next_line = 1
        self._max_record_bytes = max_record_bytes

    def feed(self, chunk: bytes) -> Optional[RawBatch]:
        buf = self._pending + chunk if self._pending else chunk
        ends = kernels.record_ends(buf) if self._native else _record_ends(buf)
        if not len(ends):
            if len(buf) > self._max_record_bytes and b"\n" in buf:
                ends = np.array([buf.index(b"\n") + 1], dtype=np.int64)
            else:
                self._pending = buf
                return None
        cut = int(ends[-1])
        self._pending = buf[cut:]
        return self._batch(buf[:cut], ends)

    def close(self) -> Optional[RawBatch]:
        """The last record, when the member does not end with a line feed."""
        if not self._pending:
            return None
        buf, self._pending = self._pending, b""
        return self._batch(buf, np.array([len(buf)], dtype=np.int64))

    def _batch(self, data: bytes, ends: np.ndarray) -> RawBatch:
        starts = np.concatenate(([0], ends)).astype(np.int64)
        if self._native:
            before, total = kernels.line_feeds_before(data, starts)
        else:
            line_feeds = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == _LF)
            before, total = np.searchsorted(line_feeds, starts[:-1]), len(line_feeds)
        batch = RawBatch(data, starts, self._next_record,
                         (self._next_line + before).astype(np.int64))
        self._next_record += len(batch)
        self._next_line += total
        return batch


def _record_ends(buf: bytes) -> np.ndarray:
    """Offsets just past each line feed that ends a record (an even count of quotes before)."""
    array = np.frombuffer(buf, dtype=np.uint8)
    line_feeds = np.flatnonzero(array == _LF)
    quotes = np.flatnonzero(array == _QUOTE)
    if len(quotes):
        line_feeds = line_feeds[(np.searchsorted(quotes, line_feeds) & 1) == 0]
    return line_feeds + 1


def strip_line_end(record: bytes) -> bytes:
    if record.endswith(b"\n"):
        record = record[:-1]
        if record.endswith(b"\r"):
            record = record[:-1]
    return record


def parse_header(record: bytes, encoding: str) -> list[str]:
    """The header's column names, trimmed and lower-cased, for the comparison of spec 1.3."""
    text = strip_line_end(record.removeprefix(BOM)).decode(encoding, errors="replace")
    return [name.strip().lower() for name in next(csv.reader([text], delimiter=";"))]


@dataclasses.dataclass
class ParsedBatch:
    """A batch of one member's records, split into fields: what validation works on.

    ``table`` holds the contract's columns as strings (empty means null), plus ``record_number``,
    ``line_number`` and ``raw`` (the record's bytes, for the rejects).
    """

    member_name: str
    kind: str
    table: pa.Table
    rejects: pa.Table  # structural rejects: COLUMN_COUNT, BAD_ENCODING


class BatchParser:
    """Parses ``RawBatch``es of one member into ``ParsedBatch``es (with the compiled kernels
    when ``native``)."""

    def __init__(self, member_name: str, kind: str, columns: Sequence[str],
                 native: bool = False):
        self._native = native
        self._member = member_name
        self._kind = kind
        self._columns = list(columns)
        self._read_options = pacsv.ReadOptions(
            column_names=self._columns, use_threads=False, block_size=1 << 26
        )
        self._convert_options = pacsv.ConvertOptions(
            column_types={name: pa.string() for name in self._columns},
            strings_can_be_null=False, quoted_strings_can_be_null=False,
        )

    def parse(self, batch: RawBatch) -> ParsedBatch:
        count = len(batch)
        codes = self._codes(batch)
        good = np.flatnonzero(codes == 0)
        numbers = batch.first_record + np.arange(count, dtype=np.int64)
        raw = _raw_records(batch)
        table = (kernels.split_fields(batch.data, batch.starts, good, self._columns)
                 if self._native else None)
        if table is None:
            table = self._fields(batch, good)
        if table is None:  # Arrow and the quote parity disagree: fall back to csv
            table, good = self._fields_by_csv(batch, good, codes)
        every = len(good) == count
        table = (
            table.append_column("record_number", pa.array(numbers if every else numbers[good]))
            .append_column("line_number", pa.array(batch.lines if every else batch.lines[good]))
            .append_column("raw", raw if every else raw.take(pa.array(good, type=pa.int64())))
        )
        return ParsedBatch(self._member, self._kind, table, self._rejects(batch, numbers, codes))

    def _codes(self, batch: RawBatch) -> np.ndarray:
        """Per record: 0 ok, 1 not in the encoding, 2 another count of columns (3, csv's own
        refusal, is found later by ``_fields_by_csv``)."""
        if self._native:
            return kernels.record_codes(batch.data, batch.starts, len(self._columns))
        codes = np.zeros(len(batch), dtype=np.int8)
        codes[_bad_utf8_records(batch)] = 1
        delimiters = _unquoted_delimiters(batch)
        codes[(codes == 0) & (delimiters != len(self._columns) - 1)] = 2
        return codes

    def _fields(self, batch: RawBatch, good: np.ndarray) -> Optional[pa.Table]:
        if not len(good):
            return _empty_table(self._columns)
        if len(good) == len(batch):
            source = batch.data
        else:
            source = b"".join(batch.record(i) for i in good)
        if not source.endswith(b"\n"):
            source += b"\n"
        if source.startswith(BOM):  # Arrow would drop it, though not the member's first bytes
            return None
        invalid: list[object] = []

        def on_invalid(row: object) -> str:
            invalid.append(row)
            return "skip"

        parse_options = pacsv.ParseOptions(
            delimiter=";", quote_char='"', double_quote=True, escape_char=False,
            newlines_in_values=True, ignore_empty_lines=False, invalid_row_handler=on_invalid,
        )
        try:
            table = pacsv.read_csv(
                io.BytesIO(source), read_options=self._read_options,
                parse_options=parse_options, convert_options=self._convert_options,
            )
        except pa.ArrowInvalid:
            return None
        if invalid or table.num_rows != len(good):
            return None
        return table

    def _fields_by_csv(
        self, batch: RawBatch, good: np.ndarray, codes: np.ndarray
    ) -> tuple[pa.Table, np.ndarray]:
        rows: list[list[str]] = []
        kept: list[int] = []
        width = len(self._columns)
        for index in good:
            text = strip_line_end(batch.record(int(index))).decode("utf-8")
            try:
                fields = next(csv.reader([text], delimiter=";", strict=True), [""])
            except csv.Error:  # a line break or a quote where CSV allows none
                codes[index] = 3
                continue
            if len(fields) != width:
                codes[index] = 2
                continue
            rows.append(fields)
            kept.append(int(index))
        columns = list(zip(*rows)) if rows else [[] for _ in self._columns]
        table = pa.table(
            {name: pa.array(values, type=pa.string())
             for name, values in zip(self._columns, columns)}
        )
        return table, np.array(kept, dtype=np.int64)

    def _rejects(self, batch: RawBatch, numbers: np.ndarray, codes: np.ndarray) -> pa.Table:
        bad = np.flatnonzero(codes)
        width = len(self._columns)
        messages = {
            1: ("BAD_ENCODING", "bytes not valid in the declared encoding"),
            2: ("COLUMN_COUNT", f"expected {width} columns"),
            3: ("COLUMN_COUNT", f"not {width} CSV columns: a line break or a quote outside a "
                "quoted field"),
        }
        rows = {name: [] for name in REJECT_SCHEMA.names}
        for index in bad:
            code, message = messages[int(codes[index])]
            rows["member_name"].append(self._member)
            rows["record_number"].append(int(numbers[index]))
            rows["line_number"].append(int(batch.lines[index]))
            rows["error_code"].append(getattr(RecordCode, code))
            rows["error_message"].append(message)
            rows["raw"].append(decode_raw(batch.record(int(index))))
        return pa.table(rows, schema=REJECT_SCHEMA)


def decode_raw(record: bytes) -> str:
    """A rejected record's text as stored in REJECT: undecodable bytes shown as \\xNN."""
    return strip_line_end(record).decode("utf-8", errors="backslashreplace")


def _empty_table(columns: Sequence[str]) -> pa.Table:
    return pa.table({name: pa.array([], type=pa.string()) for name in columns})


def _raw_records(batch: RawBatch) -> pa.Array:
    """The records' bytes as one Arrow binary array sharing the batch's buffer."""
    return pa.Array.from_buffers(
        pa.binary(), len(batch),
        [None, pa.py_buffer(batch.starts.astype(np.int32)), pa.py_buffer(batch.data)],
    )


def _unquoted_delimiters(batch: RawBatch) -> np.ndarray:
    """Per record, the count of ``;`` outside quotes (each record starts outside quotes)."""
    array = np.frombuffer(batch.data, dtype=np.uint8)
    semis = np.flatnonzero(array == _SEMI)
    quotes = np.flatnonzero(array == _QUOTE)
    if len(quotes):
        semis = semis[(np.searchsorted(quotes, semis) & 1) == 0]
    owner = np.searchsorted(batch.starts, semis, side="right") - 1
    return np.bincount(owner, minlength=len(batch))[: len(batch)]


def _bad_utf8_records(batch: RawBatch) -> np.ndarray:
    """Indexes of the records that are not valid UTF-8; one decode of the batch when all are."""
    bad: list[int] = []
    view, position = memoryview(batch.data), 0
    while True:
        try:
            codecs.utf_8_decode(view[position:], "strict", True)
            return np.array(bad, dtype=np.int64)
        except UnicodeDecodeError as error:
            index = int(np.searchsorted(batch.starts, position + error.start, side="right")) - 1
            bad.append(index)
            position = int(batch.starts[index + 1])
