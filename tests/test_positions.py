"""The delivery's per-batch steps on Arrow tables: touched days and keys, and positions."""

from __future__ import annotations

import datetime
from decimal import Decimal

import apache_beam as beam
import pyarrow as pa
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.deliver import _as_positions, _day_keys, _positions, _touched, _touched_days
from transforms import contract
from transforms.pivot_package import Position
from transforms.structured_rows import DAY_BUCKETS, TABLES, _DistinctDaysFn, cre_days
from transforms.validate import ValidatedBatch

DAY = datetime.date(2026, 11, 22)
EARLIER = DAY - datetime.timedelta(days=1)
MINE, OTHER = "BAF_20261122_01", "BAF_20261121_06"
EVENTS = pa.table({
    "account_id": ["A", "A", "A", "B", "A", "A", "C"],
    "value_date": [DAY, DAY, DAY, DAY, EARLIER, DAY, DAY],
    "cre_id": ["1", "2", "3", "4", "5", "6", "7"],
    "vacation_id": [MINE] * 5 + [OTHER] * 2,
    "event_type": ["DEBIT", "CREDIT", "FEE", "CREDIT", "TRANSFER_OUT", "CREDIT", "DEBIT"],
    "amount": [Decimal("-10.25"), Decimal("3.5"), Decimal("-0.75"), Decimal("99999999.99"),
               Decimal("-1"), Decimal("2"), Decimal("-4")],
    "currency": ["EUR", "EUR", "EUR", "USD", "EUR", "EUR", "EUR"],
})


def test_touched_keys_are_the_vacations_own_distinct_keys():
    assert sorted(_touched(EVENTS, MINE).to_pylist(), key=str) == [
        {"account_id": "A", "value_date": EARLIER, "currency": "EUR"},
        {"account_id": "A", "value_date": DAY, "currency": "EUR"},
        {"account_id": "B", "value_date": DAY, "currency": "USD"}]


def test_positions_cover_touched_keys_over_every_event_of_their_day():
    positions = sorted(_as_positions(_positions(_touched(EVENTS, MINE), EVENTS)), key=str)
    # A's day holds another vacation's credit of 2.00; C's day was not touched at all
    assert positions == sorted([
        Position("A", "2026-11-22", "EUR", 4, Decimal("11.00"), Decimal("5.50")),
        Position("B", "2026-11-22", "USD", 1, Decimal("0"), Decimal("99999999.99")),
        Position("A", "2026-11-21", "EUR", 1, Decimal("1"), Decimal("0"))], key=str)


def test_day_sums_are_exact_beyond_one_amounts_precision():
    rows = pa.concat_tables([EVENTS.slice(3, 1)] * 3)
    assert _as_positions(_positions(_touched(rows, MINE), rows)) == [
        Position("B", "2026-11-22", "USD", 3, Decimal("0"), Decimal("299999999.97"))]


def test_nothing_touched_means_no_positions():
    assert _positions(_touched(EVENTS.slice(5), MINE), EVENTS.slice(5)).num_rows == 0


def test_each_touched_day_is_read_once_from_its_account_month_partition():
    pages = [EVENTS.select(["account_id", "value_date"]).slice(start, 4) for start in (0, 2)]
    buckets: dict[int, list[pa.Table]] = {}
    for page in pages:
        for bucket, days in _touched_days(page):
            buckets.setdefault(bucket, []).append(days)
    keys = [key for tables in buckets.values()
            for read in _day_keys(pa.concat_tables(tables)) for key in read]
    # one key per partition, with the partition's days for its IN (one query, not one a day)
    assert sorted((account, month, sorted(days)) for account, month, days in keys) == [
        ("A", 202611, sorted([EARLIER, DAY])), ("B", 202611, [DAY])]
    # an account's days all fall in one bucket, whichever page they came from
    for account in "AB":
        assert sum(any(row["account_id"] == account for table in tables
                       for row in table.to_pylist()) for tables in buckets.values()) == 1


def test_ingest_records_each_touched_day_once_in_its_accounts_bucket():
    batch = ValidatedBatch("CRE_0001.csv", "cre", EVENTS, pa.table({}), None)
    days = cre_days(batch, MINE)
    assert sorted(zip(days["account_id"].to_pylist(), days["value_date"].to_pylist())) == [
        ("A", EARLIER), ("A", DAY), ("B", DAY), ("C", DAY)]
    assert set(days["vacation_id"].to_pylist()) == {MINE}
    # the buckets the delivery reads are the ones the legacy path derives from the versions
    legacy = {(row["account_id"], bucket) for bucket, table in
              _touched_days(EVENTS.select(["account_id", "value_date"]))
              for row in table.to_pylist()}
    assert set(zip(days["account_id"].to_pylist(), days["bucket"].to_pylist())) == legacy
    assert all(0 <= bucket < DAY_BUCKETS for bucket in days["bucket"].to_pylist())


def _days_of(tables: list[pa.Table]) -> list[tuple]:
    return [(row["account_id"], row["value_date"], row["bucket"], row["vacation_id"])
            for table in tables for row in table.to_pylist()]


def test_a_bundles_batches_write_each_day_once():
    batches = [ValidatedBatch("CRE_0001.csv", "cre", EVENTS.slice(start, 3), pa.table({}), None)
               for start in (0, 2, 4)]
    by_batch = sorted(_days_of([cre_days(batch, MINE) for batch in batches]))
    [(step, days_rows)] = [(step, rows) for step, table, rows in TABLES[contract.CRE]
                           if table == "cre_days_by_vacation"]
    with TestPipeline() as pipeline:
        written = (pipeline | beam.Create(batches, reshuffle=False) | step >> days_rows(MINE)
                   | beam.FlatMap(lambda table: _days_of([table])))
        assert_that(written, equal_to(sorted(set(by_batch))))
    assert len(by_batch) > len(set(by_batch))  # the batches did repeat days


def test_days_past_the_flush_size_leave_before_the_bundle_ends():
    days = _DistinctDaysFn(MINE, flush_rows=2)
    days.start_bundle()
    batch = ValidatedBatch("CRE_0001.csv", "cre", EVENTS, pa.table({}), None)
    early = list(days.process(batch))
    late = [value.value for value in days.finish_bundle()]
    assert len(early) == 1 and not late  # 4 distinct days > 2 // 2: emitted at once
    assert sorted(_days_of(early)) == sorted(_days_of([cre_days(batch, MINE)]))
