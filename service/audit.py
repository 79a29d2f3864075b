"""The collection service's audit trail: who did what, from where, with what outcome.

This module owns the table ``audit_events``. It is append-only: one row per event, written with
a TTL and never updated. A partition is one tenant's UTC day, newest event first, for the one
query an audit answers, a tenant's events since a time; every read names the tenant, so no
query reaches another tenant's rows. Events of a caller who proved no tenant (a made-up token,
an unknown tenant name) are kept under ``ANONYMOUS``, which no tenant can be named.
"""

from __future__ import annotations

import datetime
import logging
import threading

from cassandra.concurrent import execute_concurrent_with_args
from cassandra.util import datetime_from_uuid1, uuid_from_time

_LOG = logging.getLogger(__name__)

ANONYMOUS = "_anonymous"  # tenant names start with a letter or a digit (tenants.py)
MAX_TTL_DAYS = 7300  # Cassandra's largest TTL: 20 years
COLUMNS = ("tenant", "at", "replica", "client", "action", "object", "outcome", "detail")


class AuditTrail:
    """The ``audit_events`` table of one keyspace, written by one service ``replica``."""

    def __init__(self, session, replica: str, ttl_days: int = 400):
        if not 1 <= ttl_days <= MAX_TTL_DAYS:
            raise ValueError(f"the audit TTL is 1 to {MAX_TTL_DAYS} days, not {ttl_days}")
        self._session = session
        self._replica = replica
        self._ttl = ttl_days * 86_400
        self._pending: set = set()  # writes sent, not yet answered: what close() waits for
        self._lock = threading.Lock()
        self._insert = session.prepare(
            "INSERT INTO audit_events (tenant, day, at, replica, client, action, object, "
            "outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?")

    def record(self, tenant: str, action: str, object_: str, outcome: str, detail: str = "",
               client: str = "") -> None:
        """Writes one event without waiting for the server, so a request never waits on its
        audit; a write that fails is logged as an error with the whole event."""
        now = datetime.datetime.now(datetime.UTC)
        event = (tenant, now.date(), uuid_from_time(now), self._replica, client, action,
                 object_, outcome, detail)
        future = self._session.execute_async(self._insert, (*event, self._ttl))
        with self._lock:
            self._pending.add(future)
        future.add_callbacks(self._written, self._lost, callback_args=(future,),
                             errback_args=(event, future))

    def close(self) -> None:
        """Waits for the writes still in flight, so a service that stops (SIGTERM) loses no
        event it answered for; each ends within the driver's request timeout."""
        with self._lock:
            pending = list(self._pending)
        for future in pending:
            try:
                future.result()
            except Exception:  # noqa: BLE001 - _lost has logged it with its event
                pass

    def _written(self, _rows, future) -> None:
        with self._lock:
            self._pending.discard(future)

    def _lost(self, error: Exception, event: tuple, future) -> None:
        self._written(None, future)
        tenant, _, at, *rest = event
        _LOG.error("audit event NOT RECORDED (%s: %s): %s", type(error).__name__, error,
                   dict(zip(COLUMNS, (tenant, datetime_from_uuid1(at), *rest))))


def events_since(session, tenant: str, since: datetime.datetime) -> list[dict]:
    """The tenant's events at or after ``since`` (aware), newest first: its partitions of each
    UTC day from then to today, read concurrently."""
    start = since.astimezone(datetime.UTC)
    days = (datetime.datetime.now(datetime.UTC).date() - start.date()).days
    select = session.prepare(f"SELECT {', '.join(COLUMNS)} FROM audit_events "
                             "WHERE tenant = ? AND day = ? AND at >= minTimeuuid(?)")
    results = execute_concurrent_with_args(
        session, select, [(tenant, start.date() + datetime.timedelta(days=day), start)
                          for day in range(days, -1, -1)], concurrency=16)
    return [{**dict(zip(COLUMNS, row)),
             "at": datetime_from_uuid1(row[1]).replace(tzinfo=datetime.UTC)}
            for _, rows in results for row in rows]


def tenants_since(session, since: datetime.datetime) -> list[str]:
    """Every tenant with a trail at or after ``since``, for an operator's listing of all: the
    partition keys alone, read once."""
    start = since.astimezone(datetime.UTC).date()
    return sorted({tenant for tenant, day in
                   session.execute("SELECT DISTINCT tenant, day FROM audit_events")
                   if day.date() >= start})
