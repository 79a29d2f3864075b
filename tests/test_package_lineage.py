"""A package's lineage as the delivery cuts it: the versions behind each touched position, in
parts of ``PART_EVENTS``, and the keys a redelivery keeps (``parts_of``), which must be exactly
the parts ``position_versions`` writes, or a redelivery would delete rows it just wrote."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pyarrow as pa

from pipelines import package_lineage
from pipelines.package_lineage import PART_EVENTS, parts_of, position_versions
from transforms import pivot_package

DAY = datetime.date(2026, 10, 6)


def _latest(events: list[tuple[str, datetime.date, str, str, str]]) -> pa.Table:
    account, day, currency, cre_id, vacation = zip(*events)
    return pa.table({"account_id": account, "value_date": pa.array(day, pa.date32()),
                     "currency": currency, "cre_id": cre_id, "vacation_id": vacation})


def test_each_touched_position_keeps_the_versions_it_summed_in_parts():
    busy = [("ACC00000001", DAY, "EUR", f"C{n:05d}", f"BAF_20261006_0{1 + n % 2}")
            for n in range(2 * PART_EVENTS + 5)]
    quiet = [("ACC00000002", DAY, "EUR", "Q1", "BAF_20261006_01"),
             ("ACC00000002", DAY, "USD", "Q2", "BAF_20261006_01")]
    untouched = [("ACC00000003", DAY, "EUR", "U1", "BAF_20261006_01")]
    latest = _latest(busy + quiet + untouched)
    touched = _latest(busy[:1] + quiet).select(["account_id", "value_date", "currency"])
    versions = position_versions(touched, latest).to_pylist()

    assert [(row["account_id"], row["currency"], row["part"], len(row["versions"]))
            for row in versions] == [("ACC00000001", "EUR", 0, PART_EVENTS),
                                     ("ACC00000001", "EUR", 1, PART_EVENTS),
                                     ("ACC00000001", "EUR", 2, 5),
                                     ("ACC00000002", "EUR", 0, 1), ("ACC00000002", "USD", 0, 1)]
    summed = {cre_id: vacation for row in versions[:3] for cre_id, vacation in row["versions"]}
    assert summed == {cre_id: vacation for _, _, _, cre_id, vacation in busy}

    kept = parts_of([("ACC00000001", DAY, "EUR", len(busy)), ("ACC00000002", DAY, "EUR", 1),
                     ("ACC00000002", DAY, "USD", 1)])
    assert kept == {(row["account_id"], row["value_date"], row["currency"], row["part"])
                    for row in versions}


def test_no_touched_position_gives_no_row():
    latest = _latest([("ACC00000003", DAY, "EUR", "U1", "BAF_20261006_01")])
    assert position_versions(latest.slice(0, 0).select(
        ["account_id", "value_date", "currency"]), latest).num_rows == 0
    assert parts_of([]) == frozenset()


def test_the_keys_kept_come_from_the_package_as_delivered():
    summary = {"vacation_id": "BAF_20261006_03", "status": "ACCEPTED", "received_at": "r",
               "processed_at": "p", "members": [], "errors": []}
    positions = [pivot_package.Position("ACC00000001", DAY.isoformat(), "EUR", 1205,
                                        Decimal("1.00"),
                                        Decimal("2.50"))]
    data = pivot_package.archive(pivot_package.members(summary, [], positions))
    assert pivot_package.positions_of(data) == [("ACC00000001", DAY, "EUR", 1205)]
    assert package_lineage.parts_of(pivot_package.positions_of(data)) == {
        ("ACC00000001", DAY, "EUR", part) for part in range(2)}
