"""The ``vacation_quality`` table: each vacation's metrics and findings, and the history the
next vacation of its slot is judged against (``transforms.quality``); this module is its one
writer.

A run reads its slot's history before it starts (``baseline``), judges in its decision, and
``record`` keeps the result when it ends: a row per (slot, business date), so a slot's window
is one partition read newest first, and a day is six reads.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
from typing import Any, Optional

from io_connectors.cassandra_client import retry_transient
from pipelines import schedule
from transforms import contract
from transforms.contract import Outcome
from transforms.quality import SEVERITIES, Baseline, Past, Settings, worst

_LOG = logging.getLogger(__name__)
# what a later vacation is judged against: its slot's vacations that were accepted
_HISTORY_STATUSES = frozenset({Outcome.ACCEPTED, Outcome.ACCEPTED_WITH_REJECTS})
ROLLED_BACK = "ROLLED_BACK"


@dataclasses.dataclass(frozen=True)
class QualityRecord:
    """One vacation's row: its outcome, metrics, findings and the history they came from."""

    vacation_id: str
    business_date: datetime.date
    slot: int
    status: str
    metrics: dict[str, float]
    findings: list[dict[str, Any]]
    history: int
    note: str
    severity: Optional[str]

    def view(self) -> dict[str, Any]:
        """What ``cre quality --json`` and the console show of it."""
        return {"vacation_id": self.vacation_id, "business_date": self.business_date.isoformat(),
                "slot": self.slot, "status": self.status, "severity": self.severity,
                "findings": self.findings, "history": self.history, "note": self.note}


def held_by(findings: list[dict[str, Any]], hold: Optional[str]) -> Optional[str]:
    """Why a vacation's delivery waits for an operator (None: it does not): a finding at or
    above the ``hold`` severity (None: findings never hold a delivery)."""
    severity = worst(findings)
    if hold is None or severity is None or SEVERITIES.index(severity) < SEVERITIES.index(hold):
        return None
    chosen = [finding["metric"] for finding in findings if finding["severity"] == severity]
    return f"{severity} data-quality finding on {', '.join(chosen)}"


def describe(judged: dict[str, Any]) -> str:
    """A summary's quality in one line, for the ledger's story of the vacation."""
    findings = judged["findings"]
    if not findings:
        why = judged["note"] or f"judged against {judged['history']} earlier vacations"
        return f"quality: no finding ({why})"
    return f"quality: {len(findings)} finding(s): " + "; ".join(
        f"{finding['severity']} {finding['message']}" for finding in findings)


class QualityStore:
    """Reads and writes ``vacation_quality`` over a session."""

    _COLUMNS = ("vacation_id", "business_date", "slot", "status", "metrics", "findings",
                "history", "note", "severity")

    def __init__(self, session):
        self._session = session
        prepare = session.prepare
        self._insert = prepare(
            f"INSERT INTO vacation_quality ({', '.join(self._COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(self._COLUMNS))})")
        self._window = prepare(
            f"SELECT {', '.join(self._COLUMNS)} FROM vacation_quality "
            "WHERE slot = ? AND business_date >= ? AND business_date < ?")
        self._of_day = prepare(f"SELECT {', '.join(self._COLUMNS)} FROM vacation_quality "
                               "WHERE slot IN ? AND business_date = ?")
        self._mark = prepare("UPDATE vacation_quality SET status = ? "
                             "WHERE slot = ? AND business_date = ? IF EXISTS")

    def baseline(self, name: contract.VacationName, settings: Settings) -> Baseline:
        """What a run of the vacation ``name`` judges it against: its slot's accepted vacations
        over the settings' window, and the slot's deadline."""
        day = datetime.date.fromisoformat(name.business_date)
        start = day - datetime.timedelta(days=settings.window_days)
        history = tuple(Past(row.business_date, row.metrics)
                        for row in self._rows(self._window, (name.slot, start, day))
                        if row.status in _HISTORY_STATUSES)
        return Baseline(settings, history, schedule.deadline(day, name.slot))

    def series(self, slot: int, first: datetime.date, last: datetime.date) -> list[QualityRecord]:
        """The slot's vacations from ``first`` to ``last``, oldest first (the console's chart
        of a metric's history)."""
        rows = self._rows(self._window, (slot, first, last + datetime.timedelta(days=1)))
        return sorted(rows, key=lambda row: row.business_date)

    @retry_transient(max_wait=10)
    def record(self, summary: dict[str, Any]) -> None:
        """Keeps a run's metrics and findings (the summary's ``quality``), replacing an earlier
        run's."""
        judged = summary["quality"]
        self._session.execute(self._insert, (
            summary["vacation_id"], datetime.date.fromisoformat(summary["business_date"]),
            summary["slot"], summary["status"], judged["metrics"],
            json.dumps(judged["findings"]), judged["history"], judged["note"],
            worst(judged["findings"])))

    def get(self, vacation_id: str) -> Optional[QualityRecord]:
        name = contract.VacationName.parse(f"{vacation_id}.tar.bz2")
        if name is None:
            return None
        rows = self._rows(self._of_day, ([name.slot],
                                         datetime.date.fromisoformat(name.business_date)))
        return rows[0] if rows else None

    def day(self, business_date: datetime.date) -> list[QualityRecord]:
        """The day's vacations that were judged, by slot: one request."""
        return sorted(self._rows(self._of_day, (list(range(1, contract.SLOTS_PER_DAY + 1)),
                                                business_date)), key=lambda row: row.slot)

    def rolled_back(self, vacation_id: str) -> None:
        """A rolled-back vacation leaves the history the next ones are judged against."""
        name = contract.VacationName.parse(f"{vacation_id}.tar.bz2")
        if name is not None:
            self._session.execute(self._mark, (ROLLED_BACK, name.slot,
                                               datetime.date.fromisoformat(name.business_date)))

    @retry_transient(max_wait=10)
    def _rows(self, statement, values: tuple) -> list[QualityRecord]:
        return [QualityRecord(
            vacation_id, business_date.date(), slot, status, dict(metrics or {}),
            json.loads(findings or "[]"), history or 0, note or "", severity)
            for vacation_id, business_date, slot, status, metrics, findings, history, note,
            severity in self._session.execute(statement, values)]
