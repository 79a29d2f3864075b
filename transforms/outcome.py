"""From everything the run learnt about a vacation to its outcome (spec 2.1, 2.3, 2.4).

The facts are small (a few per member and per batch), so ``DecideVacation`` combines them
globally into one ``VacationFacts`` and decides in a step of its own, before anything is
published; the decision is a plain function of the facts, unit-tested without Beam.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
from collections.abc import Iterable
from decimal import Decimal
from typing import Optional

import apache_beam as beam
import pyarrow as pa
from apache_beam.transforms.display import DisplayDataItem

from transforms import contract, quality
from transforms.contract import Fatal, Outcome
from transforms.facts import (
    BatchCounts,
    BatchProfile,
    Fact,
    FatalError,
    MemberDigest,
    Meta,
    Monitor,
    StagedFile,
    StructuredWrite,
)
from transforms.profile import distinct

__all__ = ["CollectFacts", "Decision", "DecideVacation", "RunContext", "VacationFacts",
           "decide", "judge", "now", "summary"]


@dataclasses.dataclass
class _MemberTotals:
    loaded: int = 0
    rejected: int = 0
    amount_sum: Decimal = Decimal(0)

    def add(self, counts: BatchCounts | _MemberTotals) -> None:
        self.loaded += counts.loaded
        self.rejected += counts.rejected
        self.amount_sum += counts.amount_sum


@dataclasses.dataclass
class VacationFacts:
    """Every fact of one run, combined: the accumulator of ``CollectFacts``."""

    meta: Optional[Meta] = None
    monitor: Optional[Monitor] = None
    members: dict[str, MemberDigest] = dataclasses.field(default_factory=dict)
    totals: dict[str, _MemberTotals] = dataclasses.field(default_factory=dict)
    reject_codes: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    errors: list[FatalError] = dataclasses.field(default_factory=list)
    staged: list[StagedFile] = dataclasses.field(default_factory=list)
    rows_written: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    write_failures: list[StructuredWrite] = dataclasses.field(default_factory=list)
    events: dict[tuple[str, str], list] = dataclasses.field(default_factory=dict)
    value_dates: tuple[Optional[int], Optional[int]] = (None, None)
    accounts: list[pa.Array] = dataclasses.field(default_factory=list)  # distinct, by batch
    new_accounts: Optional[int] = None  # of the distinct accounts, those never seen before

    def _add_profile(self, profile: BatchProfile) -> None:
        for pair, (count, amount) in profile.events.items():
            totals = self.events.setdefault(pair, [0, Decimal(0)])
            totals[0] += count
            totals[1] += amount
        spans = [span for span in (self.value_dates, (profile.first_value_date,
                                                      profile.last_value_date))
                 if span[0] is not None]
        if spans:
            self.value_dates = (min(span[0] for span in spans), max(span[1] for span in spans))
        self._add_accounts([profile.accounts])

    def _add_accounts(self, arrays: list[pa.Array]) -> None:
        """Keeps the batches' distinct accounts, united now and then: the accumulator holds
        about the vacation's distinct accounts, not one array per batch."""
        self.accounts.extend(arrays)
        if len(self.accounts) > 32:
            self.accounts = [self.distinct_accounts()]

    def distinct_accounts(self) -> pa.Array:
        return distinct(self.accounts)

    def add(self, fact: Fact) -> VacationFacts:
        match fact:
            case Meta():
                self.meta = fact
            case Monitor():
                self.monitor = fact
            case MemberDigest():
                self.members[fact.name] = fact
            case BatchCounts():
                self.totals.setdefault(fact.member_name, _MemberTotals()).add(fact)
                self.reject_codes.update(fact.reject_codes)
            case FatalError():
                self.errors.append(fact)
            case StagedFile():
                self.staged.append(fact)
            case StructuredWrite():
                self.rows_written[fact.table] += fact.rows
                if fact.failed:
                    self.write_failures.append(fact)
            case BatchProfile():
                self._add_profile(fact)
            case _:
                raise TypeError(f"not a vacation fact: {fact!r}")
        return self

    def merge(self, other: VacationFacts) -> None:
        self.meta = self.meta or other.meta
        self.monitor = self.monitor or other.monitor
        self.members.update(other.members)
        for name, totals in other.totals.items():
            self.totals.setdefault(name, _MemberTotals()).add(totals)
        self.reject_codes.update(other.reject_codes)
        self.errors.extend(other.errors)
        self.staged.extend(other.staged)
        self.rows_written.update(other.rows_written)
        self.write_failures.extend(other.write_failures)
        self._add_profile(BatchProfile({pair: tuple(totals) for pair, totals
                                        in other.events.items()}, *other.value_dates,
                                       distinct(other.accounts)))


class CollectFacts(beam.CombineFn):
    """Combines every fact of one run into a single ``VacationFacts``."""

    def create_accumulator(self) -> VacationFacts:
        return VacationFacts()

    def add_input(self, accumulator: VacationFacts, fact: Fact) -> VacationFacts:
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
    quality: Optional[quality.Baseline] = None  # None: the vacation's quality is not judged


def _member_rows(facts: VacationFacts) -> list[dict]:
    listed = [entry for entry in (facts.meta.members if facts.meta else ())
              if entry.kind in contract.DATA_TYPES]
    rows = []
    for entry in listed:
        totals = facts.totals.get(entry.name, _MemberTotals())
        scanned = facts.members.get(entry.name)
        records = scanned.records if scanned else totals.loaded + totals.rejected
        rows.append({"name": entry.name, "type": entry.kind, "records": records,
                     "loaded": totals.loaded, "rejected": totals.rejected})
    return rows


def _reconcile(facts: VacationFacts, members: list[dict], max_ratio: float) -> list[FatalError]:
    errors = []
    declared = {entry.name: entry for entry in facts.meta.members}
    monitor = {line.member_name: line for line in (facts.monitor.lines if facts.monitor else ())}
    for row in members:
        name, counted = row["name"], row["loaded"] + row["rejected"]
        line = monitor[name]
        for source, expected in (("META", declared[name].records),
                                 ("MONITOR", line.record_count)):
            if counted != expected:
                errors.append(FatalError(
                    Fatal.RECON_COUNT_MISMATCH,
                    f"{name}: {row['loaded']} loaded + {row['rejected']} rejected = {counted}, "
                    f"{source} says {expected} records"))
        if row["type"] == contract.CRE and row["rejected"] == 0:
            total = facts.totals.get(name, _MemberTotals()).amount_sum
            if total != line.amount_sum:
                errors.append(FatalError(
                    Fatal.RECON_AMOUNT_MISMATCH,
                    f"{name}: the amounts sum to {total:.2f}, MONITOR says {line.amount_sum}"))
    records = sum(row["records"] for row in members)
    rejected = sum(row["rejected"] for row in members)
    if records and rejected / records > max_ratio:
        errors.append(FatalError(
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
        status = Outcome.REJECTED
    elif totals["rejected"]:
        status = Outcome.ACCEPTED_WITH_REJECTS
    else:
        status = Outcome.ACCEPTED
    reject_codes = dict(sorted(facts.reject_codes.items()))
    judged = _quality(facts, context, status, members, totals, reject_codes)
    return summary(context, status, processed_at, errors, members, totals, reject_codes, judged)


def _quality(facts: VacationFacts, context: RunContext, status: Outcome, members: list[dict],
             totals: dict, reject_codes: dict) -> Optional[dict]:
    """The vacation's metrics and findings (``transforms.quality``), unless not asked for; a
    REJECTED vacation is measured but not judged (its reading may have stopped early)."""
    baseline = context.quality
    if baseline is None:
        return None
    business_date = datetime.date.fromisoformat(context.business_date)
    records = dict.fromkeys(contract.DATA_TYPES, 0)
    for row in members:
        records[row["type"]] += row["records"]
    loaded_cre = sum(row["loaded"] for row in members if row["type"] == contract.CRE)
    found = quality.metrics(
        records, loaded_cre, totals["rejected"], reject_codes,
        {pair: tuple(counted) for pair, counted in facts.events.items()}, facts.value_dates,
        business_date, len(facts.distinct_accounts()), facts.new_accounts,
        datetime.datetime.fromisoformat(context.received_at), baseline.deadline)
    if status == Outcome.REJECTED:
        return {"findings": [], "history": 0, "note": "not judged: the vacation is REJECTED",
                "metrics": dict(sorted(found.items()))}
    return quality.judge(found, baseline, business_date, context.slot)


def summary(context: RunContext, status: Outcome, processed_at: str,
            errors: Iterable[FatalError] = (), members: Iterable[dict] = (),
            totals: Optional[dict] = None, reject_codes: Optional[dict] = None,
            judged: Optional[dict] = None) -> dict:
    """The summary of spec 2.4; ``quality`` only when the vacation's quality was judged."""
    quality_part = {} if judged is None else {"quality": judged}
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
        **quality_part,
    }


def now() -> str:
    """A summary's time stamps: UTC, ISO 8601 to the millisecond."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


@dataclasses.dataclass(frozen=True)
class Decision:
    """What ``PublishVacation`` is told: the summary, and the staged files, META and MONITOR to
    publish with it; or, when ``discarded`` says why, nothing at all."""

    summary: Optional[dict]
    files: tuple[StagedFile, ...] = ()
    meta: Optional[Meta] = None
    monitor: Optional[Monitor] = None
    discarded: str = ""


def judge(facts: VacationFacts, context: RunContext, processed_at: str) -> Decision:
    """An accepted vacation publishes all it staged, a REJECTED one only its rejects and AUDIT.

    Rows the structured zone could not take are the platform's failure, not the vacation's: the
    vacation is not judged, nothing is published, and the run is retried whole.
    """
    if facts.write_failures:
        failed = sum(failure.failed for failure in facts.write_failures)
        first = facts.write_failures[0]
        return Decision(None, discarded=f"{failed} rows could not be written to the structured "
                                        f"zone (first: {first.table}: {first.error})")
    outcome = decide(facts, context, processed_at)
    if outcome["status"] == Outcome.REJECTED:
        return Decision(outcome, tuple(staged for staged in facts.staged
                                       if staged.output_type == contract.REJECT))
    return Decision(outcome, tuple(facts.staged), facts.meta, facts.monitor)


def _judge_now(facts: VacationFacts, context: RunContext) -> Decision:
    return judge(facts, context, now())


@beam.typehints.with_input_types(Fact)
@beam.typehints.with_output_types(Decision)
class DecideVacation(beam.PTransform):
    """Every fact of one run in, its one ``Decision`` out, for ``PublishVacation`` to carry out.

    Args:
      context: what the driver knows of the vacation (id, sha256, reject ratio limit, the
        quality baseline...).
      new_accounts: a transform from the combined ``VacationFacts`` to the same with
        ``new_accounts`` counted (``io_connectors.first_seen.CountNewAccounts``), run between
        combining and judging; None when there is no structured zone to ask.
    """

    def __init__(self, context: RunContext, new_accounts: Optional[beam.PTransform] = None):
        super().__init__()
        if not isinstance(context, RunContext):
            raise TypeError(f"context must be a RunContext, not {type(context).__name__}")
        if new_accounts is not None and not isinstance(new_accounts, beam.PTransform):
            raise TypeError(f"new_accounts must be a PTransform, not "
                            f"{type(new_accounts).__name__}")
        self._context = context
        self._new_accounts = new_accounts

    def expand(self, facts: beam.PCollection) -> beam.PCollection:
        collected = facts | "CollectFacts" >> beam.CombineGlobally(CollectFacts())
        if self._new_accounts is not None:
            collected = collected | "NewAccounts" >> self._new_accounts
        return collected | "Judge" >> beam.Map(_judge_now, self._context)

    def display_data(self) -> dict:
        return {"vacation_id": DisplayDataItem(self._context.vacation_id, label="Vacation"),
                "max_reject_ratio": DisplayDataItem(self._context.max_reject_ratio,
                                                    label="Largest reject ratio accepted")}
