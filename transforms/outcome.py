"""From everything the run learnt about a vacation to its outcome (spec 2.1, 2.3, 2.4).

The facts are small (a few per member and per batch), so they are combined globally into one
``VacationFacts`` and the decision is a plain function of it, unit-tested without Beam.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Optional

import apache_beam as beam

from transforms import contract
from transforms.contract import Fatal, Status, VacationError
from transforms.vacation_reader import MemberFacts, MonitorLine
from transforms.validate import BatchCounts


@dataclasses.dataclass
class StagedFile:
    """An Avro file a run wrote to staging, published only if the vacation is accepted."""

    output_type: str
    path: str
    records: int


@dataclasses.dataclass
class StructuredWrite:
    """Rows a bundle wrote to one structured-zone table, or could not write and why."""

    table: str
    rows: int
    failed: int = 0
    error: str = ""


@dataclasses.dataclass
class _MemberTotals:
    loaded: int = 0
    rejected: int = 0
    amount_sum: Decimal = Decimal(0)


@dataclasses.dataclass
class VacationFacts:
    meta: Optional[dict] = None
    monitor: Optional[list[MonitorLine]] = None
    members: dict[str, MemberFacts] = dataclasses.field(default_factory=dict)
    totals: dict[str, _MemberTotals] = dataclasses.field(default_factory=dict)
    reject_codes: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    errors: list[VacationError] = dataclasses.field(default_factory=list)
    staged: list[StagedFile] = dataclasses.field(default_factory=list)
    rows_written: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    write_failures: list[StructuredWrite] = dataclasses.field(default_factory=list)

    def add(self, fact: Any) -> VacationFacts:
        if isinstance(fact, dict):
            self.meta = fact
        elif isinstance(fact, list):
            self.monitor = fact
        elif isinstance(fact, MemberFacts):
            self.members[fact.name] = fact
        elif isinstance(fact, BatchCounts):
            totals = self.totals.setdefault(fact.member_name, _MemberTotals())
            totals.loaded += fact.loaded
            totals.rejected += fact.rejected
            totals.amount_sum += fact.amount_sum
            self.reject_codes.update(fact.reject_codes)
        elif isinstance(fact, VacationError):
            self.errors.append(fact)
        elif isinstance(fact, StagedFile):
            self.staged.append(fact)
        elif isinstance(fact, StructuredWrite):
            self.rows_written[fact.table] += fact.rows
            if fact.failed:
                self.write_failures.append(fact)
        elif isinstance(fact, VacationFacts):
            self.merge(fact)
        else:
            raise TypeError(f"not a vacation fact: {fact!r}")
        return self

    def merge(self, other: VacationFacts) -> None:
        self.meta = self.meta or other.meta
        self.monitor = self.monitor or other.monitor
        self.members.update(other.members)
        for name, totals in other.totals.items():
            mine = self.totals.setdefault(name, _MemberTotals())
            mine.loaded += totals.loaded
            mine.rejected += totals.rejected
            mine.amount_sum += totals.amount_sum
        self.reject_codes.update(other.reject_codes)
        self.errors.extend(other.errors)
        self.staged.extend(other.staged)
        self.rows_written.update(other.rows_written)
        self.write_failures.extend(other.write_failures)


class CollectFacts(beam.CombineFn):
    """Combines every fact of one run into a single ``VacationFacts``."""

    def create_accumulator(self) -> VacationFacts:
        return VacationFacts()

    def add_input(self, accumulator: VacationFacts, fact: Any) -> VacationFacts:
        return accumulator.add(fact)

    def merge_accumulators(self, accumulators: Iterable[VacationFacts]) -> VacationFacts:
        merged = VacationFacts()
        for accumulator in accumulators:
            merged.merge(accumulator)
        return merged

    def extract_output(self, accumulator: VacationFacts) -> VacationFacts:
        return accumulator


@dataclasses.dataclass(frozen=True)
class RunContext:
    """What the driver knows of the vacation before the pipeline runs."""

    vacation_id: str
    business_date: Optional[str]
    slot: Optional[int]
    sha256: str
    received_at: str
    max_reject_ratio: float = contract.DEFAULT_MAX_REJECT_RATIO


def _member_rows(facts: VacationFacts) -> list[dict]:
    listed = [entry for entry in (facts.meta or {}).get("members", [])
              if entry["type"] in contract.DATA_TYPES]
    rows = []
    for entry in listed:
        totals = facts.totals.get(entry["name"], _MemberTotals())
        scanned = facts.members.get(entry["name"])
        records = scanned.records if scanned else totals.loaded + totals.rejected
        rows.append({"name": entry["name"], "type": entry["type"], "records": records,
                     "loaded": totals.loaded, "rejected": totals.rejected})
    return rows


def _reconcile(facts: VacationFacts, members: list[dict], max_ratio: float) -> list[VacationError]:
    errors = []
    declared = {entry["name"]: entry for entry in facts.meta["members"]}
    monitor = {line.member_name: line for line in facts.monitor or []}
    for row in members:
        name, counted = row["name"], row["loaded"] + row["rejected"]
        line = monitor[name]
        for source, expected in (("META", declared[name]["records"]),
                                 ("MONITOR", line.record_count)):
            if counted != expected:
                errors.append(VacationError(
                    Fatal.RECON_COUNT_MISMATCH,
                    f"{name}: {row['loaded']} loaded + {row['rejected']} rejected = {counted}, "
                    f"{source} says {expected} records"))
        if row["type"] == contract.CRE and row["rejected"] == 0:
            total = facts.totals.get(name, _MemberTotals()).amount_sum
            if total != line.amount_sum:
                errors.append(VacationError(
                    Fatal.RECON_AMOUNT_MISMATCH,
                    f"{name}: the amounts sum to {total:.2f}, MONITOR says {line.amount_sum}"))
    records = sum(row["records"] for row in members)
    rejected = sum(row["rejected"] for row in members)
    if records and rejected / records > max_ratio:
        errors.append(VacationError(
            Fatal.REJECT_RATIO_EXCEEDED,
            f"{rejected} of {records} records rejected ({rejected / records:.2%}), "
            f"above the limit of {max_ratio:.2%}"))
    return errors


def decide(facts: VacationFacts, context: RunContext, processed_at: str) -> dict:
    """The vacation's summary (spec 2.4), also its AUDIT record."""
    members = _member_rows(facts)
    errors = list(facts.errors)
    if not errors:
        errors = _reconcile(facts, members, context.max_reject_ratio)
    totals = {key: sum(row[key] for row in members) for key in ("records", "loaded", "rejected")}
    if errors:
        status = Status.REJECTED
    elif totals["rejected"]:
        status = Status.ACCEPTED_WITH_REJECTS
    else:
        status = Status.ACCEPTED
    return summary(context, status, processed_at, errors, members, totals,
                   dict(sorted(facts.reject_codes.items())))


def summary(context: RunContext, status: str, processed_at: str,
            errors: Iterable[VacationError] = (), members: Iterable[dict] = (),
            totals: Optional[dict] = None, reject_codes: Optional[dict] = None) -> dict:
    return {
        "vacation_id": context.vacation_id,
        "status": status,
        "sha256": context.sha256,
        "business_date": context.business_date,
        "slot": context.slot,
        "received_at": context.received_at,
        "processed_at": processed_at,
        "errors": [error.as_dict() for error in errors],
        "members": list(members),
        "totals": totals or {"records": 0, "loaded": 0, "rejected": 0},
        "reject_codes": reject_codes or {},
    }
