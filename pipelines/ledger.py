"""The vacation ledger: each vacation's state in Cassandra, changed only by conditional writes.

This module owns the tables ``vacations`` and ``vacation_history``: no other code reads or
writes them, so every rule about a vacation's state lives here. It hands out typed rows
(``VacationRecord``, ``HistoryEntry``) whose JSON columns it parses, takes typed values to
write, and ``VacationRecord.view`` is the one projection of a row that is shown.

A run claims a vacation (LWT) before it writes anything, and every later transition is
``IF run_id = <mine> AND state = <expected>``: two runs can never both own one vacation. The
claim is a short lease (``LEASE_SECONDS``) that the running ingest renews in the background
(``Ledger.renewing``, every third of it), so that a run that died on any host is taken over
once its lease lapses (at once when its process is known dead: same host, pid gone), and a
live run, however long it stays in one state, never is.

An upload enters the ledger as RECEIVED, the ingest manager's queue, by a conditional insert;
a corrected resend of a vacation that may run again takes its place the same way. Of the
ingest managers of several ``cre serve`` replicas, the one that holds a vacation (``schedule``,
another conditional write with a lease) is the only one to start its ingest.

Rows of the structured zone are visible only while their vacation is LOADED or DELIVERED.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import enum
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Optional

from cassandra import ConsistencyLevel
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.util import datetime_from_uuid1, uuid_from_time

from io_connectors.cassandra_client import retry_transient
from transforms.contract import Outcome, PlatformError
from transforms.facts import FatalError
from transforms.pivot_package import Delivery

_LOG = logging.getLogger(__name__)
# a run's claim without renewal: long enough for a few missed renewals and the hosts' clock
# skew, short enough that a crashed run's vacation waits about a minute
LEASE_SECONDS = 90.0
# what ``Ledger.deleted`` notes, and ``Ledger.rows_left`` looks for
_DELETED = ": deleted "


class State(enum.StrEnum):
    """Where a vacation is; compares, prints and goes to JSON as the text the ledger stores."""

    RECEIVED = "RECEIVED"
    LANDED = "LANDED"
    VALIDATED = "VALIDATED"
    LOADED = "LOADED"
    DELIVERED = "DELIVERED"
    REJECTED = "REJECTED"
    FAILED = "FAILED"
    ROLLED_BACK = "ROLLED_BACK"


VISIBLE = frozenset({State.LOADED, State.DELIVERED})
TERMINAL = frozenset({State.LOADED, State.DELIVERED, State.REJECTED})
IN_PROGRESS = frozenset({State.LANDED, State.VALIDATED})
# a vacation in one of these states may be sent again with another content, and queued again
RESENDABLE = frozenset({State.REJECTED, State.FAILED, State.ROLLED_BACK})


class LedgerConflict(PlatformError):
    """Another run owns the vacation, or took it over: this run must stop."""


@dataclasses.dataclass(frozen=True)
class MemberCounts:
    """A data member's records in a summary (spec 2.4)."""

    name: str
    type: str
    records: int
    loaded: int
    rejected: int


@dataclasses.dataclass(frozen=True)
class Summary:
    """A vacation's summary (spec 2.4) as its run judged it: ``document`` is kept as written
    (the package and a duplicate's answer are made of it), the properties are what is read."""

    document: dict[str, Any]

    @property
    def status(self) -> Outcome:
        return Outcome(self.document["status"])

    @property
    def processed_at(self) -> datetime.datetime:
        return datetime.datetime.fromisoformat(self.document["processed_at"])

    @property
    def errors(self) -> tuple[FatalError, ...]:
        return tuple(FatalError(**error) for error in self.document["errors"])

    @property
    def members(self) -> tuple[MemberCounts, ...]:
        return tuple(MemberCounts(**member) for member in self.document["members"])

    @property
    def totals(self) -> dict[str, int]:
        return self.document["totals"]

    @property
    def reject_codes(self) -> dict[str, int]:
        return self.document["reject_codes"]


@dataclasses.dataclass(frozen=True)
class VacationRecord:
    """A vacation's row of ``vacations``, parsed: times in UTC, JSON columns as their types."""

    vacation_id: str
    state: State
    business_date: Optional[datetime.date] = None
    slot: Optional[int] = None
    sha256: Optional[str] = None
    run_id: Optional[str] = None
    owner: Optional[str] = None
    lease_until: Optional[datetime.datetime] = None
    state_changed_at: dict[State, datetime.datetime] = dataclasses.field(default_factory=dict)
    received_at: Optional[datetime.datetime] = None
    processed_at: Optional[datetime.datetime] = None
    outcome: Optional[Outcome] = None
    records: Optional[int] = None
    loaded: Optional[int] = None
    rejected: Optional[int] = None
    errors: tuple[FatalError, ...] = ()
    summary: Optional[Summary] = None
    delivered_at: Optional[datetime.datetime] = None
    delivery: Optional[Delivery] = None
    landed_path: Optional[str] = None
    tenant: Optional[str] = None
    manager: Optional[str] = None
    manager_until: Optional[datetime.datetime] = None
    manager_failures: Optional[int] = None
    delivery_held: Optional[str] = None  # why its delivery waits for an operator's release

    @property
    def visible(self) -> bool:
        return self.state in VISIBLE

    @property
    def reject_ratio(self) -> Optional[float]:
        return self.rejected / self.records if self.records else None

    def view(self, *fields: str) -> dict[str, Any]:
        """The one projection of the row that is shown: ``cre status`` (text and ``--json``),
        the console's pages, the upload API and a run's metrics each pick ``fields`` of it
        (all without), in that order; JSON as it is but for dates and times."""
        every = {
            "vacation_id": self.vacation_id, "business_date": self.business_date,
            "slot": self.slot, "state": self.state, "outcome": self.outcome,
            "sha256": self.sha256, "records": self.records, "loaded": self.loaded,
            "rejected": self.rejected, "reject_ratio": self.reject_ratio,
            "received_at": self.received_at, "processed_at": self.processed_at,
            "delivered_at": self.delivered_at, "delivery_held": self.delivery_held,
            "run_id": self.run_id, "owner": self.owner,
            "tenant": self.tenant, "visible": self.visible,
            "state_changed_at": dict(sorted(self.state_changed_at.items(),
                                            key=lambda item: item[1])),
            "errors": [error.as_dict() for error in self.errors],
            "summary": self.summary.document if self.summary else None,
            "delivery": dataclasses.asdict(self.delivery) if self.delivery else None}
        return {name: every[name] for name in fields} if fields else every


@dataclasses.dataclass(frozen=True)
class HistoryEntry:
    """A line of ``vacation_history``: a transition, or what a run noted."""

    at: datetime.datetime
    state: State
    run_id: Optional[str]
    sha256: Optional[str]
    message: str


@dataclasses.dataclass(frozen=True)
class Claim:
    """What claiming a vacation gave: ``claimed``, ``duplicate`` or ``reused``."""

    outcome: str
    prior: Optional[VacationRecord]  # the ledger row found before the claim, if any


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def this_process() -> str:
    """``host:pid``: the owner a claim or a hold names, known dead when its process is gone."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _lapsed(until: Optional[datetime.datetime], owner: Optional[str],
            now: datetime.datetime) -> bool:
    """Whether a lease held by ``owner`` no longer protects: over, or its process gone."""
    return until is None or until < now or _dead_locally(owner)


def _dead_locally(owner: Optional[str]) -> bool:
    host, _, pid = (owner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _utc(value: Optional[datetime.datetime]) -> Optional[datetime.datetime]:
    return value.replace(tzinfo=datetime.UTC) if value and value.tzinfo is None else value


class Ledger:
    """The ``vacations`` and ``vacation_history`` tables of one keyspace."""

    _COLUMNS = tuple(field.name for field in dataclasses.fields(VacationRecord))

    def __init__(self, session, run_id: Optional[str] = None,
                 lease_seconds: float = LEASE_SECONDS):
        self._session = session
        self.run_id = run_id or uuid.uuid4().hex
        self._lease = datetime.timedelta(seconds=lease_seconds)
        prepare = session.prepare
        self._get = prepare(f"SELECT {', '.join(self._COLUMNS)} FROM vacations "
                            "WHERE vacation_id = ?")
        self._get_many = prepare(f"SELECT {', '.join(self._COLUMNS)} FROM vacations "
                                 "WHERE vacation_id IN ?")
        self._insert = prepare(
            "INSERT INTO vacations (vacation_id, business_date, slot, state, sha256, run_id, "
            "owner, lease_until, state_changed_at, received_at, landed_path) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS")
        self._take = prepare(
            "UPDATE vacations SET business_date = ?, slot = ?, state = ?, sha256 = ?, "
            "run_id = ?, owner = ?, lease_until = ?, state_changed_at = ?, received_at = ?, "
            "landed_path = ?, processed_at = null, outcome = null, records = null, "
            "loaded = null, rejected = null, errors = null, summary = null, "
            "delivered_at = null, delivery = null, delivery_held = null "
            "WHERE vacation_id = ? IF run_id = ? AND state = ?")
        self._history = prepare(
            "INSERT INTO vacation_history (vacation_id, at, state, run_id, sha256, message) "
            "VALUES (?, ?, ?, ?, ?, ?)")
        self._in_state = prepare(f"SELECT {', '.join(self._COLUMNS)} FROM vacations "
                                 "WHERE state = ?")
        self._history_of = prepare(
            "SELECT at, state, run_id, sha256, message FROM vacation_history "
            "WHERE vacation_id = ?")
        self._states = prepare("SELECT vacation_id, state, sha256 FROM vacations")
        self._receive = prepare(
            "INSERT INTO vacations (vacation_id, business_date, slot, state, sha256, tenant, "
            "landed_path, received_at, state_changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "IF NOT EXISTS")
        self._requeue = prepare(
            "UPDATE vacations SET state = ?, sha256 = ?, tenant = ?, landed_path = ?, "
            "received_at = ?, state_changed_at = ?, run_id = null, owner = null, "
            "lease_until = null, delivered_at = null, delivery = null, delivery_held = null, "
            "manager = null, "
            "manager_until = null, manager_failures = null "
            "WHERE vacation_id = ? IF state = ? AND sha256 = ?")
        self._schedule = prepare(
            "UPDATE vacations SET manager = ?, manager_until = ? WHERE vacation_id = ? "
            "IF state = ? AND sha256 = ? AND manager = ? AND manager_until = ?")
        self._hold = prepare(
            "UPDATE vacations SET manager_until = ?, manager_failures = ? "
            "WHERE vacation_id = ? IF manager = ?")
        self._renew = prepare("UPDATE vacations SET lease_until = ? WHERE vacation_id = ? "
                              "IF run_id = ? AND state IN ?")

    @property
    def session(self):
        return self._session

    @retry_transient(max_wait=10)
    def get(self, vacation_id: str, serial: bool = False) -> Optional[VacationRecord]:
        """The row; ``serial`` reads at LOCAL_SERIAL, which completes any conditional write
        still in flight on it."""
        statement = self._get.bind((vacation_id,))
        if serial:
            statement.consistency_level = ConsistencyLevel.LOCAL_SERIAL
        row = self._session.execute(statement).one()
        return None if row is None else self._record(row)

    def get_many(self, vacation_ids: list[str]) -> dict[str, VacationRecord]:
        """The rows of those vacations that are in the ledger: one request per hundred (a
        console page reads 180, and a request costs the driver more than its rows)."""
        chunks = [(vacation_ids[start:start + 100],)
                  for start in range(0, len(vacation_ids), 100)]
        results = execute_concurrent_with_args(self._session, self._get_many, chunks,
                                               concurrency=8, raise_on_first_error=True)
        return {row[0]: self._record(row) for _, rows in results for row in rows}

    def in_state(self, state: State) -> list[VacationRecord]:
        """The vacations in ``state`` (through the SAI index on it)."""
        return [self._record(row) for row in self._session.execute(self._in_state, (state,))]

    def states(self) -> dict[str, dict]:
        """Every vacation's state and sha256, in one scan: the ledger is one small table."""
        return {vacation_id: {"state": state, "sha256": sha256}
                for vacation_id, state, sha256 in self._session.execute(self._states)}

    def visible(self) -> frozenset[str]:
        """The vacations whose rows are served (LOADED or DELIVERED)."""
        return frozenset(vacation_id for vacation_id, row in self.states().items()
                         if row["state"] in VISIBLE)

    def _record(self, row: tuple) -> VacationRecord:
        found = dict(zip(self._COLUMNS, row))
        for name in ("lease_until", "received_at", "processed_at", "delivered_at",
                     "manager_until"):
            found[name] = _utc(found[name])
        if found["business_date"] is not None:
            found["business_date"] = found["business_date"].date()
        found["state"] = State(found["state"])
        found["state_changed_at"] = {State(state): _utc(at) for state, at in
                                     (found["state_changed_at"] or {}).items()}
        outcome, errors, summary, delivery = (
            found[name] for name in ("outcome", "errors", "summary", "delivery"))
        return VacationRecord(**{
            **found, "outcome": Outcome(outcome) if outcome else None,
            "errors": tuple(FatalError(**error) for error in json.loads(errors or "[]")),
            "summary": Summary(json.loads(summary)) if summary else None,
            "delivery": Delivery(**json.loads(delivery)) if delivery else None})

    def history(self, vacation_id: str) -> list[HistoryEntry]:
        return [HistoryEntry(datetime_from_uuid1(at).replace(tzinfo=datetime.UTC), State(state),
                             run_id, sha256, message)
                for at, state, run_id, sha256, message in
                self._session.execute(self._history_of, (vacation_id,))]

    def note(self, vacation_id: str, state: State, sha256: Optional[str], message: str) -> None:
        values = (vacation_id, uuid_from_time(_now()), state, self.run_id, sha256, message)
        retry_transient(max_wait=10)(self._session.execute)(self._history, values)

    def deleted(self, vacation_id: str, state: State, sha256: Optional[str], why: str,
                counts: dict[str, int]) -> None:
        """Notes that ``why`` deleted every row the vacation had in the structured zone
        (``counts`` of each kind, as the purge returned them): ``rows_left`` reads it."""
        self.note(vacation_id, state, sha256, f"{why}{_DELETED}{counts}")

    def rows_left(self, vacation_id: str) -> bool:
        """Whether the runs before this one may have left rows of the vacation: yes, unless
        the last of them ended ROLLED_BACK or REJECTED and that rollback noted its rows
        deleted (``deleted``); one interrupted before its note may have left some.

        So a run again does not look for rows known gone: the vacation_id index finds their
        tombstones, and past 100,000 of them Cassandra fails the read."""
        for entry in self.history(vacation_id):  # newest first
            if entry.run_id == self.run_id or entry.state == State.RECEIVED:
                continue  # this run's claim; the upload that queued it
            if entry.state not in (State.ROLLED_BACK, State.REJECTED):
                return True
            if _DELETED in entry.message:
                return False
        return True

    def refused(self, vacation_id: str, why: str) -> None:
        """Notes in the vacation's history that a run refused to start it, in the state it
        stays in."""
        row = self.get(vacation_id)
        if row is not None:
            self.note(vacation_id, row.state, row.sha256, f"refused: {why}")

    def _applied(self, statement, values: tuple, vacation_id: str,
                 mine: Callable[[VacationRecord], bool]) -> bool:
        """Runs a conditional write of ``vacation_id``'s row, retrying a cluster's transient
        failures: whether it was applied.

        A conditional write that timed out may still have been applied (Paxos finishes it or
        not), so a retry that finds its condition false reads the row back at LOCAL_SERIAL, and
        ``mine`` says whether what it holds is this write.
        """
        attempts = 0

        @retry_transient(max_wait=10)
        def execute() -> bool:
            nonlocal attempts
            attempts += 1
            return self._session.execute(statement, values).one()[0]

        if execute():
            return True
        row = self.get(vacation_id, serial=True) if attempts > 1 else None
        return row is not None and mine(row)

    def _owns(self, state: State) -> Callable[[VacationRecord], bool]:
        """``mine`` for a write that gave this run the row in ``state``."""
        return lambda row: row.state == state and row.run_id == self.run_id

    def receive(self, vacation_id: str, business_date: datetime.date, slot: int, sha256: str,
                received_at: datetime.datetime, landed_path: str, tenant: str) -> None:
        """Queues an upload as RECEIVED, for the ingest manager to take.

        A vacation the ledger does not know is inserted (LWT). A new content for one that may
        run again (``RESENDABLE``: a corrected resend) replaces it, conditional on the row read,
        so a run that claimed it meanwhile keeps it. Any other row stays as it is: the same
        content again, a vacation being ingested, or a loaded one (whose new upload is then
        shown REJECTED, VACATION_ID_REUSED).
        """
        received = {State.RECEIVED: received_at}

        def queued(row: VacationRecord) -> bool:
            return row.state == State.RECEIVED and row.sha256 == sha256

        if self._applied(self._receive, (
                vacation_id, business_date, slot, State.RECEIVED, sha256, tenant, landed_path,
                received_at, received), vacation_id, queued):
            return
        prior = self.get(vacation_id)
        if prior is not None and prior.state in RESENDABLE and prior.sha256 != sha256:
            self._applied(self._requeue, (
                State.RECEIVED, sha256, tenant, landed_path, received_at, received, vacation_id,
                prior.state, prior.sha256), vacation_id, queued)

    def claim(self, vacation_id: str, business_date: datetime.date, slot: int, sha256: str,
              received_at: datetime.datetime, landed_path: str, replay: bool = False) -> Claim:
        """Makes this run the vacation's owner (state LANDED), unless it must not run.

        A ``replay`` runs an archive again that was already ingested, but never over rows that
        are visible: those are rolled back first.
        """
        now = _now()
        values = (business_date, slot, State.LANDED, sha256, self.run_id, this_process(),
                  now + self._lease, {State.LANDED: now}, received_at, landed_path)
        prior = self.get(vacation_id)
        if prior is None:
            if self._applied(self._insert, (vacation_id, *values), vacation_id,
                             self._owns(State.LANDED)):
                self.note(vacation_id, State.LANDED, sha256, "claimed")
                return Claim("claimed", None)
            prior = self.get(vacation_id)
        if replay and prior.state in VISIBLE:
            raise LedgerConflict(f"{vacation_id} is {prior.state}: roll it back first "
                                 f"(cre rollback {vacation_id})")
        if prior.sha256 == sha256 and prior.state in TERMINAL and not replay:
            self.note(vacation_id, prior.state, sha256, "duplicate: nothing done again")
            return Claim("duplicate", prior)
        if prior.state in VISIBLE:
            self.note(vacation_id, prior.state, sha256,
                      f"refused: {vacation_id} is already {prior.state} with another sha256")
            return Claim("reused", prior)
        if prior.state in IN_PROGRESS and not self.abandoned(prior, now):
            raise LedgerConflict(
                f"{vacation_id} is being ingested by run {prior.run_id} ({prior.owner}) "
                f"until {prior.lease_until:%Y-%m-%dT%H:%M:%SZ} at the latest; try again later")
        if not self._applied(self._take, (*values, vacation_id, prior.run_id, prior.state),
                             vacation_id, self._owns(State.LANDED)):
            raise LedgerConflict(f"another run claimed {vacation_id} at the same moment")
        self.note(vacation_id, State.LANDED, sha256,
                  f"claimed (was {prior.state} by run {prior.run_id})")
        return Claim("claimed", prior)

    def renew(self, vacation_id: str) -> bool:
        """Extends this run's claim by a lease from now, while the vacation is in progress
        and still this run's: False once it is not (done, or taken over)."""
        return self._applied(
            self._renew, (_now() + self._lease, vacation_id, self.run_id, list(IN_PROGRESS)),
            vacation_id, lambda row: row.run_id == self.run_id and row.state in IN_PROGRESS)

    @contextlib.contextmanager
    def renewing(self, vacation_id: str) -> Iterator[None]:
        """This run's claim on ``vacation_id`` renewed every third of a lease, in a thread,
        while the block runs: a run as long as the contract's largest vacation keeps it, and
        one that dies lets it lapse. A renewal that fails (Cassandra away for a moment) is
        tried again at the next beat; one refused means the claim is no longer ours, and the
        run's next transition will say so (``LedgerConflict``)."""
        stop = threading.Event()
        beat = self._lease.total_seconds() / 3

        def renew_until_stopped() -> None:
            while not stop.wait(beat):
                try:
                    if not self.renew(vacation_id):
                        _LOG.error("%s: this run's claim could not be renewed: it is no "
                                   "longer in progress under run %s", vacation_id, self.run_id)
                        return
                except Exception as error:  # noqa: BLE001 - the next beat tries again
                    _LOG.warning("%s: the claim's renewal failed (%s); trying again in "
                                 "%.0f s", vacation_id, error, beat)

        renewer = threading.Thread(target=renew_until_stopped, daemon=True,
                                   name=f"lease-{vacation_id}")
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()

    @staticmethod
    def abandoned(row: VacationRecord, now: datetime.datetime) -> bool:
        """Whether the run that claimed ``row`` can no longer finish it."""
        return _lapsed(row.lease_until, row.owner, now)

    def schedule(self, row: VacationRecord, replica: str, seconds: float) -> bool:
        """Gives the vacation of ``row`` (as just read) to ``replica``'s ingest manager for
        ``seconds``; of several replicas' managers, only the holder starts its ingest.

        Refused while another replica's hold protects it, and by the conditional write if the
        row changed since it was read: of two managers that read it at once, one wins.
        """
        now = _now()
        if row.manager not in (None, replica) and not _lapsed(
                row.manager_until, row.manager, now):
            return False
        return self._applied(self._schedule, (
            replica, now + datetime.timedelta(seconds=seconds), row.vacation_id,
            row.state, row.sha256, row.manager, row.manager_until),
            row.vacation_id, lambda found: found.manager == replica)

    def hold(self, vacation_id: str, replica: str, seconds: float, failures: int) -> bool:
        """Renews ``replica``'s hold for ``seconds`` and records the failed ingests it counted;
        False if the hold was lost (it lapsed and another replica took it).

        ``seconds=0`` lets the vacation go: the hold ends now rather than vanishing, so a
        ``schedule`` from a row read while it was held still fails its condition.
        """
        until = _now() + datetime.timedelta(seconds=seconds)
        return self._applied(self._hold, (until, failures, vacation_id, replica), vacation_id,
                             lambda found: found.manager == replica)

    def advance(self, vacation_id: str, from_state: State, to_state: State, message: str = "",
                *, summary: Optional[Summary] = None,
                errors: Optional[Sequence[FatalError]] = None,
                delivery_held: Optional[str] = None) -> None:
        """Moves this run's vacation on; ``LedgerConflict`` if it is no longer ours.

        ``summary`` records how the run judged the vacation: its outcome, counts, errors and
        when, with the summary itself; ``errors`` alone, what made it fail; ``delivery_held``,
        why its delivery waits for an operator's release.
        """
        now = _now()
        fields: dict[str, Any] = {}
        if summary is not None:
            fields = {"outcome": summary.status,
                      **{name: summary.totals[name] for name in ("records", "loaded", "rejected")},
                      "summary": json.dumps(summary.document),
                      "processed_at": summary.processed_at}
            errors = summary.errors if errors is None else errors
        if errors is not None:
            fields["errors"] = json.dumps([error.as_dict() for error in errors])
        if delivery_held is not None:
            fields["delivery_held"] = delivery_held
        assignments = ["state = ?", "state_changed_at[?] = ?", "lease_until = ?",
                       *(f"{name} = ?" for name in fields)]
        values = [to_state, to_state, now, now + self._lease, *fields.values()]
        statement = self._session.prepare(
            f"UPDATE vacations SET {', '.join(assignments)} WHERE vacation_id = ? "
            "IF run_id = ? AND state = ?")
        if not self._applied(statement, (*values, vacation_id, self.run_id, from_state),
                             vacation_id, self._owns(to_state)):
            raise LedgerConflict(f"run {self.run_id} no longer owns {vacation_id} in state "
                                 f"{from_state}")
        self.note(vacation_id, to_state, None, message or to_state.lower())

    def record_delivery(self, vacation_id: str, state: State,
                        delivery: Delivery) -> datetime.datetime:
        """A LOADED vacation becomes DELIVERED; a REJECTED one keeps its state. Conditional on
        the state it was read in, so a rollback meanwhile is never overwritten."""
        now = _now()
        moves = state == State.LOADED
        after = State.DELIVERED if moves else state
        # the driver quotes only a plain str in a statement that is not prepared
        if not self._applied(
                "UPDATE vacations SET state = %s, delivered_at = %s, delivery = %s"
                + (", state_changed_at[%s] = %s" if moves else "")
                + " WHERE vacation_id = %s IF state = %s",
                (str(after), now, json.dumps(dataclasses.asdict(delivery)),
                 *((str(State.DELIVERED), now) if moves else ()), vacation_id, str(state)),
                vacation_id, lambda row: row.delivery == delivery):
            raise LedgerConflict(f"{vacation_id} left state {state} while it was delivered")
        self.note(vacation_id, after, None, f"delivered {delivery.path}")
        return now

    def release_delivery(self, vacation_id: str, by: str) -> bool:
        """Lets a held delivery go (an operator's decision, ``by`` whom): whether it was held."""
        row = self.get(vacation_id)
        if row is None or row.delivery_held is None:
            return False
        if not self._applied("UPDATE vacations SET delivery_held = null WHERE vacation_id = %s "
                             "IF delivery_held = %s", (vacation_id, row.delivery_held),
                             vacation_id, lambda found: found.delivery_held is None):
            return False
        self.note(vacation_id, row.state, None, f"delivery released by {by} (it was held: "
                  f"{row.delivery_held})")
        return True

    def transition_any(self, vacation_id: str, from_state: State, to_state: State,
                       message: str) -> bool:
        """An operator's transition (rollback): conditional on the state only."""
        now = _now()
        applied = self._applied(
            "UPDATE vacations SET state = %s, state_changed_at[%s] = %s, run_id = %s "
            "WHERE vacation_id = %s IF state = %s",
            (str(to_state), str(to_state), now, self.run_id, vacation_id, str(from_state)),
            vacation_id, self._owns(to_state))
        if applied:
            self.note(vacation_id, to_state, None, message)
        return applied
