"""``CountNewAccounts``: which accounts of a vacation the structured zone had never seen.

The table ``accounts_first_seen`` (this module is its one writer) holds, per account, the
earliest vacation that brought it. Each row is written with a write time that falls as the
vacation gets later (``_write_time``), so Cassandra's last-write-wins keeps the earliest
vacation whatever order vacations are ingested, replayed or run side by side in: an account is
new to a vacation when no earlier one holds it, and asking again (a replay) gives the same
answer. Only the missing or later rows are written, so a day of known accounts costs reads
alone: one request per 100 accounts.

A rolled-back vacation's first sightings stay: the account was seen, and the vacation's replay
finds them its own again.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterator

import apache_beam as beam
from apache_beam.transforms.display import DisplayDataItem
from cassandra.concurrent import execute_concurrent_with_args

from io_connectors.cassandra_client import (
    RESTART_SECONDS,
    SESSIONS,
    CassandraConfig,
    retry_transient,
)
from transforms.outcome import VacationFacts

__all__ = ["CountNewAccounts"]

_PER_REQUEST = 100
_LATEST = 1 << 53  # microseconds, year 2255: every write time is below it


def _write_time(business_date: datetime.date, slot: int) -> int:
    """Earlier vacations write later: the earliest sighting of an account wins."""
    return _LATEST - (business_date.toordinal() * 8 + slot)


class _CountNewAccountsFn(beam.DoFn):
    def __init__(self, config: CassandraConfig, vacation_id: str, business_date: datetime.date,
                 slot: int):
        self._config = config
        self._vacation_id = vacation_id
        self._write_time = _write_time(business_date, slot)
        self._new = beam.metrics.Metrics.counter("quality", "new_accounts")

    def setup(self) -> None:
        self._session = None  # opened at the first vacation to judge: see _connect

    def _connect(self) -> None:
        """Not in ``setup``: a run whose rows failed (replicas lost) asks nothing, and must
        fail on its rows, not on a session a cluster short of a quorum cannot authenticate."""
        self._session = SESSIONS.acquire(self._config)
        table = f"{self._config.keyspace}.accounts_first_seen"
        self._select = self._session.prepare(
            f"SELECT account_id, vacation_id FROM {table} WHERE account_id IN ?")
        self._insert = self._session.prepare(
            f"INSERT INTO {table} (account_id, vacation_id) VALUES (?, ?) "
            f"USING TIMESTAMP {self._write_time}")

    def process(self, facts: VacationFacts) -> Iterator[VacationFacts]:
        if facts.write_failures:  # the run is discarded, its vacation not judged: ask nothing
            yield facts
            return
        if self._session is None:
            self._connect()
        ids = facts.distinct_accounts().to_pylist()
        earliest = self._earliest(ids)
        new = [account for account in ids
               if earliest.get(account, self._vacation_id) >= self._vacation_id]
        self._record(new)
        self._new.inc(len(new))
        yield dataclasses.replace(facts, new_accounts=len(new))

    # hundreds of requests, any of which a node restarting meanwhile times out: asked again
    # for as long as the load's own writes are (a rolling restart fails no ingest)
    @retry_transient(max_wait=30, seconds=RESTART_SECONDS)
    def _earliest(self, ids: list[str]) -> dict[str, str]:
        """The earliest vacation recorded of each account that has one."""
        chunks = [(ids[start:start + _PER_REQUEST],)
                  for start in range(0, len(ids), _PER_REQUEST)]
        return {account: vacation for _, rows in execute_concurrent_with_args(
            self._session, self._select, chunks, concurrency=32, raise_on_first_error=True)
            for account, vacation in rows}

    @retry_transient(max_wait=30, seconds=RESTART_SECONDS)
    def _record(self, new: list[str]) -> None:
        """This vacation as the first sighting of ``new``: idempotent (a fixed write time),
        so a node restarting meanwhile is waited out."""
        execute_concurrent_with_args(self._session, self._insert,
                                     [(account, self._vacation_id) for account in new],
                                     concurrency=64, raise_on_first_error=True)

    def teardown(self) -> None:
        if self._session is not None:
            SESSIONS.release(self._config)


@beam.typehints.with_input_types(VacationFacts)
@beam.typehints.with_output_types(VacationFacts)
class CountNewAccounts(beam.PTransform):
    """A vacation's combined facts in (``outcome.CollectFacts``, one element), the same out
    with ``new_accounts`` counted; records the vacation as the first sighting of each of its
    accounts no earlier vacation brought. ``DecideVacation`` runs it before it judges.

    Args:
      config: the structured zone's connection.
      vacation_id: the vacation whose facts these are.
      business_date: its business date, and
      slot: its slot: together its place in time, which decides the earliest sighting.
    """

    def __init__(self, config: CassandraConfig, vacation_id: str, business_date: datetime.date,
                 slot: int):
        super().__init__()
        if not isinstance(config, CassandraConfig):
            raise TypeError(f"config must be a CassandraConfig, not {type(config).__name__}")
        if not isinstance(business_date, datetime.date):
            raise TypeError(f"business_date must be a date, not {type(business_date).__name__}")
        if not isinstance(slot, int) or not 1 <= slot <= 6:
            raise ValueError(f"slot must be 1..6, not {slot!r}")
        self._fn = _CountNewAccountsFn(config, vacation_id, business_date, slot)
        self._vacation_id = vacation_id

    def expand(self, facts: beam.PCollection) -> beam.PCollection:
        return facts | "FirstSightings" >> beam.ParDo(self._fn)

    def display_data(self) -> dict:
        return {"vacation_id": DisplayDataItem(self._vacation_id, label="Vacation"),
                "table": DisplayDataItem("accounts_first_seen", label="Table")}
