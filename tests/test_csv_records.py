"""Record boundaries, line numbers and structural rejects of CSV batches."""

from __future__ import annotations

import numpy as np

from transforms.contract import CRE_COLUMNS
from transforms.csv_records import BatchParser, RecordSplitter

GOOD = "C-{n};ACC00000001;DEBIT;2026-11-22T09:15:00+01:00;2026-11-22;1.00;EUR;;{label}\n"


def _feed_in_pieces(data: bytes, piece: int):
    splitter = RecordSplitter()
    batches = [splitter.feed(data[i:i + piece]) for i in range(0, len(data), piece)]
    return [batch for batch in [*batches, splitter.close()] if batch is not None]


def test_quoted_line_breaks_do_not_end_records_whatever_the_chunking():
    data = (GOOD.format(n=1, label='"a\nb; ""c"""') + GOOD.format(n=2, label="x")
            + GOOD.format(n=3, label='"\r\nz"')).encode()
    for piece in (1, 7, 64, len(data)):
        batches = _feed_in_pieces(data, piece)
        records = [batch.record(i) for batch in batches for i in range(len(batch))]
        lines = np.concatenate([batch.lines for batch in batches]).tolist()
        assert len(records) == 3
        assert lines == [1, 3, 4]
        assert b"".join(records) == data


def test_last_record_without_line_feed_is_kept():
    batches = _feed_in_pieces(b"a;b\nc;d", 3)
    assert [batch.record(i) for batch in batches for i in range(len(batch))] == [b"a;b\n", b"c;d"]


def test_parser_splits_fields_and_sets_structural_rejects_apart():
    data = (GOOD.format(n=1, label='"x;y"') + "too;few\n" + GOOD.format(n=3, label="ok")).encode()
    data += GOOD.format(n=4, label="caf").encode()[:-1] + b"\xe9\n"
    splitter = RecordSplitter()
    batch = splitter.feed(data)
    parsed = BatchParser("CRE_0001.csv", "CRE", CRE_COLUMNS).parse(batch)
    assert parsed.table["cre_id"].to_pylist() == ["C-1", "C-3"]
    assert parsed.table["label"].to_pylist() == ["x;y", "ok"]
    assert parsed.table["record_number"].to_pylist() == [0, 2]
    assert parsed.rejects["error_code"].to_pylist() == ["COLUMN_COUNT", "BAD_ENCODING"]
    assert parsed.rejects["raw"].to_pylist() == ["too;few", GOOD.format(n=4, label="caf\\xe9")
                                                 .rstrip("\n")]


def _parsed(data: bytes):
    return BatchParser("CRE_0001.csv", "CRE", CRE_COLUMNS).parse(RecordSplitter().feed(data))


def test_a_line_break_or_a_quote_outside_quotes_is_a_column_count_reject():
    data = (GOOD.format(n=1, label="a\rb") + GOOD.format(n=2, label='"x"y')
            + GOOD.format(n=3, label="ok")).encode()
    parsed = _parsed(data)
    assert parsed.table["cre_id"].to_pylist() == ["C-3"]
    assert parsed.rejects["error_code"].to_pylist() == ["COLUMN_COUNT"] * 2
    assert parsed.rejects["error_message"].to_pylist() == [
        "not 9 CSV columns: a line break or a quote outside a quoted field"] * 2
    assert parsed.rejects["line_number"].to_pylist() == [1, 2]


def test_a_byte_order_mark_inside_a_member_is_data_wherever_the_batch_starts():
    """Only the member's first bytes may be a BOM (the reader removes it); Arrow's CSV reader
    would drop one that opens the bytes it is given."""
    marked = GOOD.format(n=1, label="").encode().replace(b"C-1", b"\xef\xbb\xbfC-1")
    assert _parsed(marked).table["cre_id"].to_pylist() == ["\ufeffC-1"]
    assert _parsed(b"x\n" + marked).table["cre_id"].to_pylist() == ["\ufeffC-1"]
