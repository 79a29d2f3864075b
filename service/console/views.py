"""What each console page shows, gathered from the ledger, the zones and the trails through
their owners; plain dicts for the templates, so a page is its data plus its markup."""

from __future__ import annotations

import datetime
import functools
import json
from collections import Counter
from collections.abc import Iterator
from typing import Optional

import fastavro
from apache_beam.io.filesystems import FileSystems

from io_connectors import zones
from pipelines import schedule
from pipelines.ledger import Ledger, MemberCounts, State, VacationRecord
from pipelines.lineage import Lineage, PackagePosition
from pipelines.quality import QualityRecord, QualityStore, describe
from pipelines.structured_zone import StructuredZone, slots
from service import audit
from service.console import charts
from service.console.operators import PRINCIPAL
from service.tenants import TenantStore
from service.uploads import Uploads
from transforms import contract, pivot_package

TREND_DAYS = 30
QUALITY_DAYS = 56  # the history a finding's chart shows: the judging window's default 8 weeks
REJECT_SAMPLE = 5  # rejected lines shown per reject code
LINEAGE_POSITIONS = 200  # positions the lineage page shows of a package; cre lineage has all


class ConsoleViews:
    """The pages' data, over the service's session and zones root."""

    def __init__(self, session, zones_root: str, tenants: TenantStore):
        self._session = session
        self._ledger = Ledger(session)
        self._zone = StructuredZone(session, self._ledger)
        self._quality = QualityStore(session)
        self._uploads = Uploads(session)
        self._zones_root = zones_root
        self._proxy = zones.ProxyZone(zones_root)
        self._tenants = tenants

    def day(self, business_date: datetime.date, now: datetime.datetime) -> dict:
        """The six slots of a business date, what each has done, what is late, and the
        data-quality badge of each judged one."""
        ids = slots(business_date)
        rows = self._ledger.get_many(ids)
        judged = {record.slot: record for record in self._quality.day(business_date)}
        found = []
        for slot, vacation_id in enumerate(ids, start=1):
            row = rows.get(vacation_id)
            found.append({**(row.view(*_SLOT) if row else _MISSING),
                          "slot": slot, "vacation_id": vacation_id,
                          "due": schedule.deadline(business_date, slot),
                          "late": schedule.lateness(row, business_date, slot, now),
                          "quality": _badge(judged[slot]) if slot in judged else None})
        return {"business_date": business_date, "slots": found,
                "previous": business_date - datetime.timedelta(days=1),
                "next": business_date + datetime.timedelta(days=1)}

    def vacation(self, vacation_id: str) -> Optional[dict]:
        """A vacation's story: members, rejects with samples, the reconciliation against its
        MONITOR, its data quality, the ledger history, the delivered package and the zone
        files it wrote."""
        row = self._ledger.get(vacation_id)
        if row is None:
            return None
        members = row.summary.members if row.summary else ()
        record = self._proxy.commit_record(vacation_id)
        return {**row.view(*_SLOT, "errors", "delivery", "delivery_held"),
                "vacation_id": vacation_id, "quality": self._judged(vacation_id),
                "row": row, "members": members,
                "reject_codes": row.summary.reject_codes if row.summary else {},
                "samples": self._samples(vacation_id, [member.name for member in members]),
                "reconciliation": self._reconciliation(members, record),
                "history": self._ledger.history(vacation_id),
                "manifest": self._manifest(row.delivery),
                "package_name": _lineage_package(row),
                "files": record["files"] if record else []}

    def package(self, vacation_id: str) -> Optional[tuple[str, bytes]]:
        """The delivered package's file name and bytes."""
        row = self._ledger.get(vacation_id)
        delivery = row.delivery if row else None
        data = zones.read_bytes(delivery.path) if delivery else None
        return None if data is None else (delivery.path.rsplit("/", 1)[-1], data)

    def event_lineage(self, cre_id: str) -> list[dict]:
        """Every version of an event, newest vacation first, with its member, line and the
        packages that counted it."""
        return [version.view() for version in self._lineage.event(cre_id)]

    def position_lineage(self, account_id: str, business_date: datetime.date) -> list[dict]:
        """An account's positions in the packages delivered for a business date, each with
        the event versions it was computed from."""
        return [_position(position)
                for position in self._lineage.position(account_id, business_date)]

    def package_lineage(self, package: str) -> Optional[tuple[int, list[dict]]]:
        """How many positions a delivered package has, and its first ``LINEAGE_POSITIONS``
        (None: not a delivered package): a page need not read a large package whole."""
        positions = self._lineage.package(package, LINEAGE_POSITIONS)
        if positions is None:
            return None
        return self._lineage.positions_in(package), [_position(one) for one in positions]

    @functools.cached_property
    def _lineage(self) -> Lineage:
        """Prepared on first use: a role not yet granted the lineage's tables breaks only
        the lineage page, not the service's start."""
        return Lineage(self._session, self._ledger)

    def trends(self, today: datetime.date) -> dict:
        """Records, reject ratio and ingest duration per slot over the last ``TREND_DAYS``
        days, as charts, and each tenant's uploads per day."""
        days = [today - datetime.timedelta(days=back) for back in range(TREND_DAYS - 1, -1, -1)]
        rows = self._ledger.get_many([vacation_id for day in days for vacation_id in slots(day)])
        by_slot = {slot: [rows.get(contract.vacation_id(day, slot)) for day in days]
                   for slot in range(1, contract.SLOTS_PER_DAY + 1)}

        def series(measure) -> dict[str, list[Optional[float]]]:
            return {f"slot {slot}": [measure(row) if row else None for row in found]
                    for slot, found in by_slot.items()}

        uploads = {name: Counter(upload["business_date"] for upload in self._uploads.of(name)
                                 if upload["business_date"] >= days[0])
                   for name in sorted(self._tenants.load())}
        return {"days": days, "charts": [
            charts.line_chart("Records per vacation", days, series(lambda row: row.records)),
            charts.line_chart("Reject ratio", days, series(lambda row: row.reject_ratio),
                              percent=True),
            charts.line_chart("Ingest duration", days, series(_duration), unit=" s"),
            charts.line_chart("Uploads per tenant", days, {
                name: [float(counts.get(day, 0)) for day in days]
                for name, counts in uploads.items()})],
            "uploads": {name: sum(counts.values()) for name, counts in uploads.items()}}

    def operator_events(self, since: datetime.datetime, limit: int = 500) -> list[dict]:
        """What operators did in the console since then, newest first."""
        events = [event for principal in audit.tenants_since(self._session, since)
                  if principal.startswith(PRINCIPAL)
                  for event in audit.events_since(self._session, principal, since)]
        return sorted(events, key=lambda event: event["at"], reverse=True)[:limit]

    def _judged(self, vacation_id: str) -> Optional[dict]:
        """The vacation's data-quality badge, note and findings, each finding with its chart
        (None: it was not judged)."""
        record = self._quality.get(vacation_id)
        if record is None:
            return None
        return {"badge": _badge(record), "note": record.note, "history": record.history,
                "findings": record.findings, "charts": self._finding_charts(record)}

    def _finding_charts(self, record: QualityRecord) -> list[str]:
        """Per finding, its metric over the slot's last ``QUALITY_DAYS`` days, the range it
        was expected within a band: is the value a jump, a drift, or the slot's habit?"""
        if not record.findings:
            return []
        last = record.business_date
        days = [last - datetime.timedelta(days=back) for back in range(QUALITY_DAYS - 1, -1, -1)]
        metrics = {past.business_date: past.metrics
                   for past in self._quality.series(record.slot, days[0], last)}
        return [_finding_chart(finding, days, metrics) for finding in record.findings]

    def _samples(self, vacation_id: str, members: list[str]) -> dict[str, list[dict]]:
        """Up to ``REJECT_SAMPLE`` rejected lines of each code, in file order."""
        samples: dict[str, list[dict]] = {}
        for reject in self._zone.rejects(vacation_id, members):
            kept = samples.setdefault(reject["error_code"], [])
            if len(kept) < REJECT_SAMPLE:
                kept.append(reject)
        return samples

    def _reconciliation(self, members: tuple[MemberCounts, ...],
                        record: Optional[dict]) -> list[dict]:
        """Each member's records against the count (and amount) its MONITOR declared."""
        declared = {line["member_name"]: line for line in _monitor_lines(record)}
        return [{"member": member.name, "records": member.records,
                 "declared": declared.get(member.name, {}).get("record_count"),
                 "amount_sum": declared.get(member.name, {}).get("amount_sum"),
                 "matches": declared.get(member.name, {}).get("record_count")
                 == member.records}
                for member in members if member.type in ("CRE", "GESPARAM")]

    @staticmethod
    def _manifest(delivery: Optional[pivot_package.Delivery]) -> list[dict]:
        data = zones.read_bytes(delivery.path) if delivery else None
        if data is None:
            return []
        return json.loads(pivot_package.read_archive(data)[pivot_package.MANIFEST])


def _monitor_lines(record: Optional[dict]) -> Iterator[dict]:
    """The MONITOR lines the vacation published to the Proxy Producer zone."""
    for published in (record or {}).get("files", []):
        if published["type"] == "MONITOR" and published["records"]:
            with FileSystems.open(published["path"]) as handle:
                yield from fastavro.reader(handle)


# what a slot's line (and the top of a vacation's page) shows of a ledger row
_SLOT = ("state", "outcome", "records", "loaded", "rejected", "reject_ratio", "received_at",
         "processed_at", "delivered_at", "visible", "tenant")
_MISSING = {"state": "MISSING", **dict.fromkeys(field for field in _SLOT[1:] if field != "visible")}


def _lineage_package(row: VacationRecord) -> Optional[str]:
    """The package whose lineage the vacation's page links to: none before a delivery, nor
    after a rollback, which purges the package's lineage."""
    if row.delivery is None or row.state == State.ROLLED_BACK:
        return None
    return pivot_package.package_name(row.vacation_id)


def _position(position: PackagePosition) -> dict:
    """A position as the page shows it: its delivery time a datetime, as the other pages'."""
    return {**position.view(), "delivered_at": position.delivered_at}


def _badge(record: QualityRecord) -> dict:
    """What a page shows of a judged vacation at a glance: its worst finding's severity and
    the number of findings ("ok": none), the findings' messages (or why none) in its tooltip."""
    count = len(record.findings)
    return {"severity": record.severity or "ok",
            "label": f"{record.severity} {count}" if record.severity else "ok",
            "title": describe(record.view())}


def _finding_chart(finding: dict, days: list[datetime.date],
                   metrics: dict[datetime.date, dict[str, float]]) -> str:
    """A finding's metric over ``days``, the range it was expected within a band; on the last
    day, the finding's, the value judged (which the metrics leave out when it is a 0)."""
    name, expected = finding["metric"], finding["expected"]
    values = [metrics.get(day, {}).get(name) for day in days[:-1]] + [finding["value"]]
    return charts.line_chart(name, days, {name: values},
                             band=(expected["low"], expected["high"]))


def _duration(row: VacationRecord) -> Optional[float]:
    """Seconds from landing to the outcome."""
    landed = row.state_changed_at.get(State.LANDED)
    if landed is None or row.processed_at is None:
        return None
    return (row.processed_at - landed).total_seconds()
