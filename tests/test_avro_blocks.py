"""The vector Avro encoder against fastavro's reader."""

from __future__ import annotations

import datetime
import io
from decimal import Decimal

import fastavro
import pyarrow as pa
import pytest

import schemas
from io_connectors.avro_blocks import AvroBlockEncoder, AvroContainerWriter


@pytest.mark.parametrize("codec", ["null", "deflate", "snappy"])
def test_cre_records_read_back_exactly(codec):
    table = pa.table({
        "record_number": pa.array([1, 2, 300], pa.int64()),
        "line_number": pa.array([2, 3, 2**40], pa.int64()),
        "cre_id": ["a", "b-2", "c" * 36],
        "account_id": ["ACC00000001", "ACC00000002", "ZZ999999999"],
        "event_type": ["DEBIT", "REVERSAL", "FEE"],
        "event_ts": pa.array([0, -1, 1_795_335_300_000_000], pa.timestamp("us", tz="UTC")),
        "value_date": pa.array([0, -365, 20_000], pa.date32()),
        "amount": pa.array([Decimal("0.01"), Decimal("-12.50"), Decimal("9999999999999999.99")],
                           pa.decimal128(18, 2)),
        "currency": ["EUR", "USD", "JPY"],
        "counterparty_iban": [None, "FR7630006000011234567890189", None],
        "label": ["café €", None, 'x;"y"\nz'],
    })
    buffer = io.BytesIO()
    writer = AvroContainerWriter(buffer, schemas.definition("CRE"), codec)
    constants = {"vacation_id": "BAF_20261122_03", "member_name": "CRE_0001.csv"}
    encoder = AvroBlockEncoder(schemas.definition("CRE"), constants)
    writer.write_block(table.num_rows, encoder.encode(table))
    writer.write_block(1, encoder.encode(table.slice(2)))
    buffer.seek(0)
    utc = datetime.UTC
    rows = [
        {"record_number": 1, "line_number": 2, "cre_id": "a", "account_id": "ACC00000001",
         "event_type": "DEBIT",
         "event_ts": datetime.datetime(1970, 1, 1, tzinfo=utc),
         "value_date": datetime.date(1970, 1, 1), "amount": Decimal("0.01"), "currency": "EUR",
         "counterparty_iban": None, "label": "café €"},
        {"record_number": 2, "line_number": 3, "cre_id": "b-2", "account_id": "ACC00000002",
         "event_type": "REVERSAL",
         "event_ts": datetime.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=utc),
         "value_date": datetime.date(1969, 1, 1), "amount": Decimal("-12.50"),
         "currency": "USD", "counterparty_iban": "FR7630006000011234567890189", "label": None},
        {"record_number": 300, "line_number": 2**40, "cre_id": "c" * 36,
         "account_id": "ZZ999999999", "event_type": "FEE",
         "event_ts": datetime.datetime(2026, 11, 22, 8, 15, tzinfo=utc),
         "value_date": datetime.date(2024, 10, 4), "amount": Decimal("9999999999999999.99"),
         "currency": "JPY", "counterparty_iban": None, "label": 'x;"y"\nz'},
    ]
    expected = [{**constants, **row} for row in [*rows, rows[2]]]
    assert list(fastavro.reader(buffer)) == expected  # every field of every record
