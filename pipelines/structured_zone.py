"""Reading the structured zone: the queries of spec section 3, and removing what a vacation wrote.

A row is served only if its vacation is visible in the ledger (LOADED or DELIVERED), and only
if that vacation is the latest visible one to have written the row's key: a later correction
wins, and rolling it back (its ledger state leaves the visible set) brings the earlier
version back at once, before its rows are even deleted.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from decimal import Decimal
from typing import Optional

from cassandra.concurrent import execute_concurrent_with_args

from io_connectors.cassandra_client import retry_transient
from pipelines.ledger import Ledger
from transforms import contract
from transforms.structured_rows import DAY_BUCKETS

_EVENT_COLUMNS = ("account_id", "value_date", "cre_id", "vacation_id", "event_type", "event_ts",
                  "amount", "currency", "counterparty_iban", "label")


def _months(first: datetime.date, last: datetime.date) -> list[int]:
    """The ``yyyymm`` buckets from ``last`` back to ``first``, newest first."""
    found, year, month = [], last.year, last.month
    while (year, month) >= (first.year, first.month):
        found.append(year * 100 + month)
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return found


def _date(value) -> Optional[datetime.date]:
    return None if value is None else value.date() if hasattr(value, "date") else value


class StructuredZone:
    """The queries, over one keyspace's session."""

    def __init__(self, session, ledger: Optional[Ledger] = None):
        self._session = session
        self.ledger = ledger or Ledger(session)
        prepare = session.prepare
        self._events = prepare(
            f"SELECT {', '.join(_EVENT_COLUMNS)} FROM cre_events_by_account "
            "WHERE account_id = ? AND month = ? AND value_date >= ? AND value_date <= ?")
        self._versions = prepare(
            "SELECT vacation_id FROM cre_event_versions WHERE cre_id = ?")
        self._params = prepare(
            "SELECT valid_from, vacation_id, param_value, label, valid_to FROM gesparam_versions "
            "WHERE table_code = ? AND param_key = ? AND valid_from <= ?")
        self._rejects = prepare(
            "SELECT record_number, line_number, error_code, error_message, raw "
            "FROM rejects_by_vacation WHERE vacation_id = ? AND member_name = ?")
        self._visible: dict[str, bool] = {}

    def _is_visible(self, vacation_id: str) -> bool:
        if vacation_id not in self._visible:
            row = self.ledger.get(vacation_id)
            self._visible[vacation_id] = bool(row and row.visible)
        return self._visible[vacation_id]

    def events(self, account_id: str, first: datetime.date,
               last: datetime.date) -> list[dict]:
        """Query 1: the latest visible version of each event, newest value date first."""
        self._visible.clear()
        rows = []
        for month in _months(first, last):
            for row in self._session.execute(self._events, (account_id, month, first, last)):
                rows.append(dict(zip(_EVENT_COLUMNS, row)))
        latest = self._latest_versions({row["cre_id"] for row in rows
                                        if self._is_visible(row["vacation_id"])})
        served = [row for row in rows if latest.get(row["cre_id"]) == row["vacation_id"]]
        for row in served:
            row["value_date"] = _date(row["value_date"])
            row["event_ts"] = row["event_ts"].replace(tzinfo=datetime.UTC)
        return served

    def _latest_versions(self, cre_ids: set[str]) -> dict[str, str]:
        """cre_id -> the latest visible vacation that wrote it (wherever it put it)."""
        ordered = sorted(cre_ids)
        results = execute_concurrent_with_args(self._session, self._versions,
                                               [(cre_id,) for cre_id in ordered],
                                               concurrency=64, raise_on_first_error=True)
        latest = {}
        for cre_id, (_, versions) in zip(ordered, results):
            for (vacation_id,) in versions:  # newest first
                if self._is_visible(vacation_id):
                    latest[cre_id] = vacation_id
                    break
        return latest

    def position(self, account_id: str, value_date: datetime.date) -> list[dict]:
        """Query 2: per currency, the day's event count, debit and credit totals and net."""
        totals: dict[str, dict] = {}
        for event in self.events(account_id, value_date, value_date):
            total = totals.setdefault(event["currency"], {
                "account_id": account_id, "value_date": value_date,
                "currency": event["currency"], "event_count": 0,
                "debit_total": Decimal("0.00"), "credit_total": Decimal("0.00")})
            total["event_count"] += 1
            side = "debit_total" if event["event_type"] in contract.DEBIT_TYPES else "credit_total"
            total[side] += abs(event["amount"])
        for total in totals.values():
            total["net_amount"] = total["credit_total"] - total["debit_total"]
        return [totals[currency] for currency in sorted(totals)]

    def param(self, table_code: str, param_key: str, on: datetime.date) -> Optional[dict]:
        """Query 3: the version in force on ``on``: the latest validity start that covers it,
        as written by the latest visible vacation."""
        self._visible.clear()
        seen_from = None
        for valid_from, vacation_id, value, label, valid_to in self._session.execute(
                self._params, (table_code, param_key, on)):
            if valid_from == seen_from or not self._is_visible(vacation_id):
                continue
            seen_from = valid_from  # the first visible row of a validity start is its latest
            if valid_to is None or _date(valid_to) >= on:
                return {"table_code": table_code, "param_key": param_key, "param_value": value,
                        "label": label, "valid_from": _date(valid_from),
                        "valid_to": _date(valid_to), "vacation_id": vacation_id}
        return None

    def rejects(self, vacation_id: str, member_names: list[str]) -> Iterator[dict]:
        """Query 5: a vacation's rejected records, member by member, in record order."""
        for member_name in member_names:
            for record_number, line_number, code, message, raw in self._session.execute(
                    self._rejects, (vacation_id, member_name)):
                yield {"member_name": member_name, "record_number": record_number,
                       "line_number": line_number, "error_code": code,
                       "error_message": message, "raw": raw}

    def reject_members(self, vacation_id: str) -> list[str]:
        rows = self._session.execute("SELECT member_name FROM rejects_by_vacation "
                                     "WHERE vacation_id = %s", (vacation_id,))
        return sorted({member_name for (member_name,) in rows})

    def written(self, vacation_id: str) -> dict[str, int]:
        """Query 6: how many rows the vacation wrote to each table."""
        return {table: sum(1 for _ in self._session.execute(
                    f"SELECT {key} FROM {table} WHERE vacation_id = %s", (vacation_id,)))
                for table, key in (("cre_event_versions", "cre_id"),
                                   ("gesparam_versions", "param_key"),
                                   ("rejects_by_vacation", "record_number"))}

    # a cluster that just lost or regained a node times out for a while: the purge starts
    # over (it is idempotent) rather than failing the replay that needs it
    @retry_transient()
    def purge(self, vacation_id: str, keep_rejects: bool = False,
              rows: bool = True) -> dict[str, int]:
        """Deletes every row the vacation wrote (query 6 finds them); idempotent, streamed.
        Not its CRE and GESPARAM rows when not ``rows`` (the ledger knows them deleted
        already: ``Ledger.rows_left``), nor its rejects with ``keep_rejects``."""
        deleted = self._purge_rows(vacation_id) if rows else {"cre": 0, "gesparam": 0}
        deleted["rejects"] = 0
        if not keep_rejects:
            members = self.reject_members(vacation_id)
            self._concurrent(self._session.prepare(
                "DELETE FROM rejects_by_vacation WHERE vacation_id = ? AND member_name = ?"),
                [(vacation_id, member) for member in members])
            deleted["rejects"] = len(members)
        return deleted

    def _purge_rows(self, vacation_id: str) -> dict[str, int]:
        prepare = self._session.prepare
        delete_event = prepare(
            "DELETE FROM cre_events_by_account WHERE account_id = ? AND month = ? "
            "AND value_date = ? AND cre_id = ? AND vacation_id = ?")
        delete_version = prepare(
            "DELETE FROM cre_event_versions WHERE cre_id = ? AND vacation_id = ?")
        delete_param = prepare(
            "DELETE FROM gesparam_versions WHERE table_code = ? AND param_key = ? "
            "AND valid_from = ? AND vacation_id = ?")
        deleted = {"cre": 0, "gesparam": 0}
        for chunk in self._chunks("SELECT cre_id, account_id, value_date FROM "
                                  "cre_event_versions WHERE vacation_id = %s", vacation_id):
            events = []
            for cre_id, account_id, value_date in chunk:
                day = _date(value_date)
                events.append((account_id, day.year * 100 + day.month, day, cre_id,
                               vacation_id))
            self._concurrent(delete_event, events)
            self._concurrent(delete_version, [(row[0], vacation_id) for row in chunk])
            deleted["cre"] += len(chunk)
        self._concurrent(prepare("DELETE FROM cre_days_by_vacation WHERE vacation_id = ? "
                                 "AND bucket = ?"),
                         [(vacation_id, bucket) for bucket in range(DAY_BUCKETS)])
        for chunk in self._chunks("SELECT table_code, param_key, valid_from FROM "
                                  "gesparam_versions WHERE vacation_id = %s", vacation_id):
            self._concurrent(delete_param, [(*key, vacation_id) for key in chunk])
            deleted["gesparam"] += len(chunk)
        return deleted

    def _chunks(self, query: str, vacation_id: str, size: int = 5000) -> Iterator[list[tuple]]:
        chunk: list[tuple] = []
        for row in self._session.execute(query, (vacation_id,)):
            chunk.append(row)
            if len(chunk) == size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _concurrent(self, statement, parameters: list[tuple]) -> None:
        if parameters:
            execute_concurrent_with_args(self._session, statement, parameters,
                                         concurrency=128, raise_on_first_error=True)


def slots(business_date: datetime.date) -> list[str]:
    """The six vacation ids a business date should bring."""
    return [contract.vacation_id(business_date, slot)
            for slot in range(1, contract.SLOTS_PER_DAY + 1)]
