"""The delivery's per-batch steps on Arrow tables: touched keys and partial positions."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pyarrow as pa

from pipelines.deliver import _position_parts, _sum_parts, _touched

DAY = datetime.date(2026, 11, 22)
EVENTS = pa.table({
    "account_id": ["A", "A", "A", "B", "A"],
    "value_date": [DAY, DAY, DAY, DAY, DAY - datetime.timedelta(days=1)],
    "cre_id": ["1", "2", "3", "4", "5"],
    "vacation_id": ["BAF_20261122_01"] * 5,
    "event_type": ["DEBIT", "CREDIT", "FEE", "CREDIT", "TRANSFER_OUT"],
    "amount": [Decimal("-10.25"), Decimal("3.5"), Decimal("-0.75"), Decimal("99999999.99"),
               Decimal("-1")],
    "currency": ["EUR", "EUR", "EUR", "USD", "EUR"],
})


def test_touched_keys_are_distinct():
    assert sorted(_touched(EVENTS)) == [("A", "2026-11-21", "EUR"), ("A", "2026-11-22", "EUR"),
                                        ("B", "2026-11-22", "USD")]


def test_position_parts_sum_debits_and_credits_exactly():
    parts = dict(_position_parts(EVENTS))
    assert parts == {("A", "2026-11-22", "EUR"): (3, Decimal("11.00"), Decimal("3.50")),
                     ("B", "2026-11-22", "USD"): (1, Decimal("0"), Decimal("99999999.99")),
                     ("A", "2026-11-21", "EUR"): (1, Decimal("1"), Decimal("0"))}
    # a batch's partial sums combine beyond the precision of one batch's values
    again = [parts[("B", "2026-11-22", "USD")]] * 3
    assert _sum_parts(again) == (3, Decimal("0"), Decimal("299999999.97"))


def test_an_empty_batch_has_no_parts():
    assert list(_position_parts(EVENTS.slice(0, 0))) == []
