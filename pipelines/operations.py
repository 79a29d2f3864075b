"""The platform's operations, a function each: rollback, ingest and replay, delivery and
redelivery, recovery, backup, its verification and restore.

An operation is what an operator asks for by name. It sequences the mechanisms, which stay
where they are (``ledger``, ``structured_zone``, ``ingest.run_ingest``, ``deliver``, ``backup``,
``recovery.plan``), and returns a typed result, so that every caller reaches the same code: the
``cre`` commands (``pipelines/commands/``) parse, call one of these and print; the console runs a
rollback, a few CQL statements, in ``cre serve``'s own process; the Beam runs the console and
the ingest manager start stay ``cre`` children (``pipelines/child_runs.py``), a 20 GiB run kept
apart from the web server, and the child calls the same function.

Nothing here parses a command line, prints or picks an exit code: an operation that does not
apply raises ``OperationRefused`` (``cre`` exits 3), a failure of the platform a
``PlatformError`` (``cre`` exits 1).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional

from apache_beam.options.pipeline_options import PipelineOptions

from io_connectors.cassandra_client import CassandraConfig
from pipelines import openlineage_runs, run_metrics
from pipelines.ledger import VISIBLE, Ledger, LedgerConflict, State
from pipelines.options import CassandraOptions, IngestOptions, ingest_options
from pipelines.quality import QualityStore
from pipelines.recovery import RecoveryError, Step, landed_copy, plan, replay_values, zones_root_of
from pipelines.schema_migrations import REPLICATION_FROM, require_current
from pipelines.structured_zone import StructuredZone
from transforms.contract import Outcome
from transforms.pivot_package import package_name

_LOG = logging.getLogger(__name__)


class OperationRefused(Exception):
    """The operation does not apply to the vacation as it is: nothing was done, and the answer
    is no (``cre`` exits 3). Not a ``PlatformError``: nothing failed."""


class StateChanged(LedgerConflict):
    """The vacation changed state between the operation's look and its write: nothing was
    done; run it again."""


@contextlib.contextmanager
def connected(config: CassandraConfig) -> Iterator[Any]:
    """A session on the structured zone, refused (``SchemaOutdated``) when its schema is older
    than this code, so that no operation fails half-way on a missing table or column."""
    session = config.connect(config.keyspace)
    try:
        require_current(session)
        yield session
    finally:
        session.cluster.shutdown()


# --- rollback --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RolledBack:
    """A vacation rolled back, and the rows deleted: ``cre``, ``gesparam``, ``rejects`` and
    ``package_positions`` (its package's lineage)."""

    vacation_id: str
    state: State
    deleted: dict[str, int]

    def describe(self) -> str:
        return (f"{self.vacation_id} rolled back: deleted {self.deleted['cre']} CRE rows, "
                f"{self.deleted['gesparam']} GESPARAM rows, {self.deleted['rejects']} reject "
                f"members, {self.deleted['package_positions']} package lineage rows")


def rollback(session: Any, vacation_id: str) -> RolledBack:
    """Hides a LOADED or DELIVERED vacation's rows at once (ROLLED_BACK in the ledger: readers
    skip them), then deletes them, so the versions before it are served again. On a vacation
    already ROLLED_BACK it finishes the deletion an interrupted rollback left."""
    zone = StructuredZone(session)
    row = zone.ledger.get(vacation_id)
    if row is None or row.state not in (*VISIBLE, State.ROLLED_BACK):
        raise OperationRefused(f"{vacation_id} is {row.state if row else 'not in the ledger'}; "
                               "only LOADED or DELIVERED vacations are rolled back")
    if row.state != State.ROLLED_BACK and not zone.ledger.transition_any(
            vacation_id, row.state, State.ROLLED_BACK, "rolled back by an operator"):
        raise StateChanged(f"{vacation_id} changed state meanwhile; try again")
    from pipelines import package_lineage  # the lineage tables' owner: a Beam pipeline module

    with openlineage_runs.job_run(openlineage_runs.ROLLBACK, vacation_id) as lineage:
        QualityStore(session).rolled_back(vacation_id)
        deleted = zone.purge(vacation_id)
        deleted["package_positions"] = package_lineage.purge(session, package_name(vacation_id))
        zone.ledger.deleted(vacation_id, State.ROLLED_BACK, row.sha256, "rollback finished",
                            deleted)
        if openlineage_runs.enabled():  # the tables it removed rows from, no row written
            lineage.wrote(*openlineage_runs.tables(session, dict.fromkeys(
                ("cre_events_by_account", "cre_event_versions", "cre_days_by_vacation",
                 "gesparam_versions", "rejects_by_vacation", "package_positions",
                 "package_positions_by_day"))))
    return RolledBack(vacation_id, State.ROLLED_BACK, deleted)


# --- ingest and replay -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Ingested:
    """An ingest's end: the vacation's summary (spec 2.4), the document ``cre ingest`` prints."""

    summary: dict[str, Any]

    @property
    def status(self) -> Outcome:
        return Outcome(self.summary["status"])

    def describe(self) -> str:
        totals = self.summary["totals"]
        return f"{self.status}: {totals['loaded']} loaded, {totals['rejected']} rejected"


def ingest(options: IngestOptions, pushgateway: Optional[str] = None) -> Ingested:
    """Lands, checks, loads and delivers one archive (``ingest.run_ingest``); the run's metrics
    go to ``pushgateway`` when it ends, failed or not."""
    from pipelines.ingest import run_ingest  # Beam's pipeline modules: only for a run

    vacation_id = options.input.rpartition("/")[2].removesuffix(".tar.bz2")
    job = openlineage_runs.REPLAY if options.replay else openlineage_runs.INGEST
    with run_metrics.observed(run_metrics.INGEST, vacation_id, pushgateway) as run, \
            openlineage_runs.job_run(job, vacation_id,
                                     [openlineage_runs.file(options.input)]) as lineage:
        run.summary = run_ingest(options)
        if openlineage_runs.enabled():
            openlineage_runs.ingested(lineage, options.input, options.zones_root,
                                      options.view_as(CassandraOptions).cassandra_config(),
                                      run.summary)
    return Ingested(run.summary)


def replay_input(session: Any, vacation_id: str,
                 zones_root: Optional[str] = None) -> dict[str, Any]:
    """A replay's first half: the ``IngestOptions`` values that run the vacation again from the
    landing copy the ledger recorded (``RecoveryError`` when there is none), in ``zones_root``
    or else the zones it landed in, with ``replay`` (the claim purges what an earlier run wrote,
    and refuses a vacation whose rows are visible). ``ingest`` of them is the second half: two
    calls, so that ``cre replay`` says which one failed."""
    return replay_values(Ledger(session).get(vacation_id), vacation_id, zones_root)


# --- delivery --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Delivered:
    """A vacation's Arkea ABS package: where it lies, its sha256 and size, when it was
    delivered, and whether this call delivered it (False: it already was)."""

    vacation_id: str
    path: str
    sha256: str
    bytes: int
    delivered_at: datetime.datetime
    delivered: bool

    def describe(self) -> str:
        return (f"{self.vacation_id}: " + ("delivered " if self.delivered else
                                           "already delivered ")
                + f"{self.path} ({self.bytes} bytes, sha256 {self.sha256})")


def deliver(config: CassandraConfig, vacation_id: str, outbound_root: str, *,
            redeliver: bool = False, beam_args: Sequence[str] = (),
            pushgateway: Optional[str] = None, session: Any = None,
            released_by: Optional[str] = None) -> Delivered:
    """Builds and delivers the package of a LOADED or REJECTED vacation unless it already was
    (``redeliver``: again), and records it in the ledger; the run's metrics, a failed
    connection included, go to ``pushgateway``. ``session``: a caller's open session (a
    recovery delivers several vacations over one), else one of its own. ``released_by``: who
    releases a delivery a data-quality finding held (``DeliveryHeld`` otherwise)."""
    from pipelines.deliver import deliver as deliver_package  # Beam's pipeline modules

    with run_metrics.observed(run_metrics.DELIVER, vacation_id, pushgateway), \
            (contextlib.nullcontext(session) if session else connected(config)) as session:
        if released_by is not None:
            Ledger(session).release_delivery(vacation_id, released_by)
        try:
            result = deliver_package(session, config, vacation_id, outbound_root, redeliver,
                                     PipelineOptions(list(beam_args)))
        finally:
            run_metrics.record_ledger(session, vacation_id)
    return Delivered(**{**result, "delivered_at": datetime.datetime.fromisoformat(
        result["delivered_at"])})


# --- recovery --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Runs:
    """What the Beam runs of an operation are given: the ``CassandraOptions`` values as the
    command took them (an ingest connects as its command did), the zones (None: where each
    vacation landed), the outbound root (None: the zones root), the runner's options and the
    Pushgateway."""

    cassandra: Mapping[str, Any]
    zones_root: Optional[str] = None
    outbound_root: Optional[str] = None
    beam_args: tuple[str, ...] = ()
    pushgateway: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Recovery:
    """What recovery found, did (each step's ``result``) or, in a dry run, would do."""

    steps: tuple[Step, ...]
    failed: bool  # a step ended in an error
    dry_run: bool


def recover(config: CassandraConfig, grace: datetime.timedelta, runs: Runs,
            dry_run: bool = False) -> Recovery:
    """Finishes what crashed runs left (``recovery.plan``): ingests again from landing,
    delivers, or cleans what cannot be run again. A vacation RECEIVED within ``grace`` is left
    to the ingest manager; one vacation's error does not stop the others."""
    failed = False
    with connected(config) as session:
        steps = plan(Ledger(session), grace)
        for step in steps:
            if step.action == "wait" or dry_run:
                continue
            try:
                step.result = _carry_out(step, session, config, runs)
            except Exception as error:  # noqa: BLE001 - one vacation must not stop the others
                _LOG.exception("recovery of %s failed", step.vacation_id)
                step.result = f"error: {str(error).splitlines()[0] if str(error) else error!r}"
                failed = True
    return Recovery(tuple(steps), failed, dry_run)


def _carry_out(step: Step, session: Any, config: CassandraConfig, runs: Runs) -> str:
    """Does ``step`` unless its vacation moved on since the plan; says what came of it."""
    ledger = Ledger(session)
    row = ledger.get(step.vacation_id)
    if row is None or row.state != step.state:
        return f"skipped: it is {row.state if row else 'gone'} now"
    if step.action == "deliver":
        root = runs.zones_root or zones_root_of(landed_copy(row, step.vacation_id))
        return "delivered " + deliver(config, step.vacation_id, runs.outbound_root or root,
                                      beam_args=runs.beam_args,
                                      pushgateway=runs.pushgateway, session=session).path
    try:
        landed_copy(row, step.vacation_id)
    except RecoveryError as error:  # nothing to run again: leave no half-written rows
        step.action = "clean"
        if not ledger.transition_any(step.vacation_id, step.state, State.FAILED, str(error)):
            return "skipped: its state changed meanwhile"
        deleted = StructuredZone(session, ledger).purge(step.vacation_id)  # rows now hidden
        return f"FAILED, deleted {deleted}: {error}"
    given = {**runs.cassandra, "outbound_root": runs.outbound_root,
             **replay_values(row, step.vacation_id, runs.zones_root)}
    return ingest(ingest_options(given, runs.beam_args), runs.pushgateway).describe()


# --- backup and restore ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BackedUp:
    """A backup made: its manifest (``backup.FORMAT``), with the folder it lies in as
    ``path``."""

    manifest: dict[str, Any]

    @property
    def path(self) -> str:
        return self.manifest["path"]

    @property
    def consistent(self) -> bool:
        """False: made with ``force`` while vacations were loaded, or changed meanwhile."""
        return self.manifest["consistent"]


def backup(config: CassandraConfig, root: str, beam_args: Sequence[str] = (),
           force: bool = False, codec: str = "deflate") -> BackedUp:
    """A logical backup of the keyspace under ``root`` (Avro files and a manifest); refused
    (``BackupError``) while a vacation is being loaded, unless ``force``."""
    from pipelines import backup as backups  # Beam's pipeline modules

    return BackedUp(backups.backup(config, root, PipelineOptions(list(beam_args)), force, codec))


@dataclasses.dataclass(frozen=True)
class Verified:
    """A backup checked against its manifest: one line per damaged file (none: whole)."""

    backup: str
    files: int
    rows: int
    damaged: tuple[str, ...]


def verify_backup(folder: str) -> Verified:
    """Reads every file of the backup in ``folder`` again: its sha256 and row count as the
    manifest says, or damaged."""
    from pipelines import backup as backups

    manifest, damaged = backups.verify(folder)
    files = sum(len(entry["files"]) for entry in manifest["tables"].values())
    return Verified(folder, files, manifest["rows"], tuple(damaged))


@dataclasses.dataclass(frozen=True)
class Restored:
    """A keyspace rebuilt from the backup in ``backup``: the rows restored, table by table, the
    replication it was created with, and where that came from (``given``, ``backup``, or
    ``default``: the backup records none)."""

    keyspace: str
    backup: str
    rows: dict[str, int]
    replication: str
    replication_from: str

    def describe(self) -> str:
        return (f"{self.keyspace}: restored {sum(self.rows.values())} rows from {self.backup}, "
                f"replication {self.replication} ({REPLICATION_FROM[self.replication_from]})")


def restore(folder: str, config: CassandraConfig, replication: Optional[str] = None,
            beam_args: Sequence[str] = ()) -> Restored:
    """Rebuilds ``config.keyspace`` from the backup in ``folder``: checks it, creates the
    keyspace with ``replication`` (None: the backup's source keyspace's, else
    ``SimpleStrategy:1`` for a backup that records none), migrates, loads; refused
    (``BackupError``) before anything is created when the cluster cannot hold that replication,
    a file is damaged or a migration unknown, and when the target holds rows."""
    from pipelines import backup as backups

    with openlineage_runs.job_run(openlineage_runs.RESTORE, config.keyspace,
                                  [openlineage_runs.file(folder)]) as lineage:
        done = backups.restore(folder, config, replication, PipelineOptions(list(beam_args)))
        if openlineage_runs.enabled():
            with openlineage_runs.connected(config) as session:
                lineage.wrote(*openlineage_runs.tables(session, done.rows))
    return Restored(config.keyspace, folder, done.rows, done.replication, done.replication_from)
