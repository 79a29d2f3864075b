"""The inbound pipeline: one vacation archive from landing to the Proxy Producer zone."""

from __future__ import annotations

import datetime
import logging
import posixpath
import uuid
from typing import Optional

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from io_connectors import sstable_writer, zones
from io_connectors.cassandra import WriteToCassandra
from io_connectors.cassandra_bulk import WriteToCassandraBulk, new_write_timestamp
from io_connectors.first_seen import CountNewAccounts
from io_connectors.landing import LandedArchiveChanged, land
from io_connectors.proxy_zone import PublishVacation, WriteStagedAvro
from pipelines import progress, quality, run_metrics, runners, schedule
from pipelines.deliver import DeliveryHeld, deliver
from pipelines.ledger import Claim, Ledger, State, Summary
from pipelines.options import CassandraOptions, IngestOptions
from pipelines.schema_migrations import require_current
from pipelines.structured_zone import StructuredZone
from transforms import contract, kernels, structured_rows
from transforms.archive import iter_members
from transforms.contract import Fatal, Outcome, VacationError, VacationName
from transforms.facts import BatchCounts, BatchProfile, FatalError, StructuredWrite
from transforms.outcome import DecideVacation, RunContext, now, summary
from transforms.profile import profile_batch
from transforms.quality import Baseline, Settings
from transforms.read_vacation import FACTS, ReadVacation, ValidateRecords
from transforms.vacation_reader import read_meta_json
from transforms.validate import ValidatedBatch

_LOG = logging.getLogger(__name__)


class IngestVacation(beam.PTransform):
    """A landed archive in, its summary out; the zones written on the way.

    With ``spread``, the batches are redistributed after the reader, the one sequential pass
    (duplicate keys, digests, limits), so that validation, Avro staging and the Cassandra
    writes of one vacation run on every worker instead of the reader's alone. With ``bulk``,
    the structured zone's rows go as SSTables (``WriteToCassandraBulk``), all with the write
    time of this run, chosen here. When the context has a quality baseline, each CRE batch is
    also profiled (``profile_batch``) beside its counts, and the decision asks the structured
    zone which of the vacation's accounts are new (``CountNewAccounts``) before it judges.
    """

    def __init__(self, archive_path: str, name: VacationName, context: RunContext,
                 options: IngestOptions, cassandra: Optional[CassandraOptions] = None,
                 spread: bool = True, bulk: bool = False):
        super().__init__()
        self._spread = spread
        self._write_timestamp = new_write_timestamp() if bulk else None
        self._archive_path = archive_path
        self._name = name
        self._context = context
        self._zones_root = options.zones_root
        self._limits = options.limits()
        self._codec = options.avro_codec
        self._decoder_threads = options.decoder_threads
        self._hot_path = options.hot_path
        self._staging = zones.ProxyZone(options.zones_root).staging(
            name.vacation_id, uuid.uuid4().hex)
        self._cassandra = cassandra.cassandra_config() if cassandra else None
        self._quality = context.quality is not None
        self._write_settings = ({"max_in_flight": cassandra.cassandra_max_in_flight,
                                 "batch_rows": cassandra.cassandra_batch_rows}
                                if cassandra else {})

    def expand(self, pbegin):
        read = (pbegin
                | "LandedArchive" >> beam.Create([self._archive_path])
                | "ReadVacation" >> ReadVacation(
                    self._name, self._limits,
                    progress=progress.Bar(f"{self._name.vacation_id} CSV", progress.BYTES),
                    decoder_threads=self._decoder_threads, hot_path=self._hot_path))
        facts = [read[FACTS]]
        # one branch per type, no Flatten of records: each branch is its own stream
        for kind in contract.DATA_TYPES:
            label = kind.capitalize()
            batches = read[kind]
            if self._spread:
                batches = batches | f"Spread{label}" >> beam.Reshuffle()
            validated = batches | f"Validate{label}" >> ValidateRecords(self._hot_path)
            facts.append(validated | f"Stage{label}" >> WriteStagedAvro(
                self._staging, self._name.vacation_id, self._codec, self._hot_path))
            measure = _counts_and_profile if (kind == contract.CRE and self._quality) \
                else _counts
            facts.append(validated | f"Measure{label}" >> beam.FlatMap(measure))
            if self._cassandra is not None:
                facts.extend(self._load(validated, kind))
        new_accounts = self._new_accounts() if self._quality else None
        return (facts
                | "AllFacts" >> beam.Flatten()
                | "Decide" >> DecideVacation(self._context, new_accounts)
                | "Publish" >> PublishVacation(self._zones_root, self._context, self._staging))

    def _new_accounts(self) -> Optional[CountNewAccounts]:
        if self._cassandra is None:
            return None
        return CountNewAccounts(self._cassandra, self._name.vacation_id,
                                datetime.date.fromisoformat(self._name.business_date),
                                self._name.slot)

    def _load(self, validated: beam.PCollection, kind: str) -> list[beam.PCollection]:
        """The structured zone's rows of one type, written; their write results as facts."""
        results = []
        for step, table, rows in structured_rows.TABLES[kind]:
            table_rows = validated | f"{step}Rows" >> rows(self._name.vacation_id)
            if self._write_timestamp is not None:
                written = table_rows | f"Bulk{step}" >> WriteToCassandraBulk(
                    self._cassandra, table, self._write_timestamp)
            else:
                write = table_rows | f"Write{step}" >> WriteToCassandra(
                    self._cassandra, table, **self._write_settings)
                written = write.written
                results.append(write.failed | f"{step}DeadLetters" >> beam.Map(
                    lambda failure: StructuredWrite(failure.table, 0, failure.rows.num_rows,
                                                    failure.error)))
            results.append(written | f"{step}Written" >> beam.Map(
                lambda count, table=table: StructuredWrite(table, count)))
        return results


def _counts(batch: ValidatedBatch) -> tuple[BatchCounts]:
    return (batch.counts,)


def _counts_and_profile(batch: ValidatedBatch) -> tuple[BatchCounts, BatchProfile]:
    return batch.counts, profile_batch(batch)


def run_ingest(options: IngestOptions) -> dict:
    """Lands, checks and publishes one vacation; returns its summary (spec 2.4)."""
    kernels.native(options.hot_path)  # a missing extension is refused before anything lands
    cassandra = options.view_as(CassandraOptions)
    file_name = posixpath.basename(options.input)
    name = VacationName.parse(file_name)
    if name is None:
        context = RunContext(file_name.removesuffix(".tar.bz2"), None, None, "", now())
        error = FatalError(Fatal.BAD_NAME, f"{file_name!r} is not BAF_<YYYYMMDD>_<NN>.tar.bz2")
        _LOG.error("%s", error)
        return summary(context, Outcome.REJECTED, now(), [error])
    config = cassandra.cassandra_config()
    session = config.connect(config.keyspace) if config else None  # fail before landing
    try:
        if session is not None:
            require_current(session)
        try:
            landed = land(options.input, options.zones_root, name.business_date,
                          name.vacation_id)
        except LandedArchiveChanged as changed:
            if session is not None:
                Ledger(session).refused(name.vacation_id, str(changed))
            raise
        _LOG.info("%s landed at %s (sha256 %s, %d bytes)", name.vacation_id, landed.path,
                  landed.sha256, landed.size)
        context = RunContext(name.vacation_id, name.business_date, name.slot, landed.sha256,
                             landed.received_at, options.max_reject_ratio,
                             _baseline(options, name, session))
        if session is None:
            return _ingest_by_commit_record(options, landed.path, name, context)
        return _ingest_with_ledger(options, landed.path, name, context,
                                   Ledger(session, lease_seconds=options.lease_seconds))
    finally:
        if session is not None:
            run_metrics.record_ledger(session, name.vacation_id)
            session.cluster.shutdown()


def _baseline(options: IngestOptions, name: VacationName, session) -> Optional[Baseline]:
    """What the vacation's quality is judged against (None: ``--quality off``): its slot's
    history in the structured zone, when there is one."""
    if options.quality == "off":
        return None
    settings = Settings.load(options.quality_settings)
    if session is None:
        day = datetime.date.fromisoformat(name.business_date)
        return Baseline(settings, None, schedule.deadline(day, name.slot))
    return quality.QualityStore(session).baseline(name, settings)


def _run_pipeline(options: IngestOptions, archive_path: str, name: VacationName,
                  context: RunContext) -> dict:
    cassandra = options.view_as(CassandraOptions)
    with beam.Pipeline(options=options) as pipeline:
        spread = options.spread == "on" or (options.spread == "auto"
                                            and not runners.one_worker(options))
        bulk = (cassandra.cassandra_config() is not None
                and load_mode(options, archive_path, name) == "bulk")
        _ = pipeline | "Ingest" >> IngestVacation(archive_path, name, context, options, cassandra,
                                                  spread, bulk)
    run_metrics.record_pipeline(pipeline.result)
    record = zones.ProxyZone(options.zones_root).commit_record(name.vacation_id)
    if record is None or record["sha256"] != context.sha256:
        raise RuntimeError(f"{name.vacation_id}: the pipeline ended without publishing")
    return record["summary"]


def load_mode(options: IngestOptions, archive_path: str, name: VacationName) -> str:
    """cql or bulk: ``--load-mode``, or for auto the records META.json declares (when it is the
    first member) against ``--bulk-min-rows``, and whether the bulk writer can run here."""
    if options.load_mode != "auto":
        _LOG.info("%s: structured zone in %s mode (--load-mode)", name.vacation_id,
                  options.load_mode)
        return options.load_mode
    declared = declared_records(archive_path, name, options.limits())
    unavailable = sstable_writer.unavailable_reason()
    mode = ("bulk" if declared is not None and declared >= options.bulk_min_rows
            and unavailable is None else "cql")
    _LOG.info("%s: structured zone in %s mode (auto: %s records declared, bulk from %d%s)",
              name.vacation_id, mode, "no" if declared is None else f"{declared:,}",
              options.bulk_min_rows, f"; bulk unavailable: {unavailable}" if unavailable else "")
    return mode


def declared_records(archive_path: str, name: VacationName,
                     limits: contract.Limits) -> Optional[int]:
    """The data records META.json declares, when it is the archive's first member (as the
    contract's one-pass reading wants it); None otherwise, or when it cannot be read (the
    ingest itself then says why)."""
    try:
        with FileSystems.open(archive_path,
                              compression_type=CompressionTypes.UNCOMPRESSED) as source:
            for member in iter_members(source, name.vacation_id, limits):
                if member.name != "META.json":
                    return None
                meta = read_meta_json(member)
                return sum(int(entry["records"]) for entry in meta["members"]
                           if entry.get("type") in contract.DATA_TYPES)
    except (VacationError, KeyError, TypeError, ValueError):
        return None
    return None


def _reused(context: RunContext, prior_sha256: str) -> dict:
    error = FatalError(
        Fatal.VACATION_ID_REUSED,
        f"{context.vacation_id} was already accepted with sha256 {prior_sha256}; "
        "this different content is kept in landing but not ingested")
    _LOG.error("%s", error)
    return summary(context, Outcome.REJECTED, now(), [error])


def _duplicate(prior_summary: dict, received_at: str) -> dict:
    return {**prior_summary, "status": Outcome.DUPLICATE, "errors": [],
            "received_at": received_at, "processed_at": now()}


def _ingest_by_commit_record(options: IngestOptions, archive_path: str, name: VacationName,
                             context: RunContext) -> dict:
    """Without a structured zone, the Proxy Producer commit records tell what was ingested."""
    zone = zones.ProxyZone(options.zones_root)
    prior = zone.commit_record(name.vacation_id)
    replay = options.replay
    if prior is not None and prior["sha256"] == context.sha256 and not replay:
        _LOG.info("%s: this archive was already ingested (%s)", name.vacation_id, prior["status"])
        return _duplicate(prior["summary"], context.received_at)
    if prior is not None and prior["status"] != Outcome.REJECTED and not replay:
        return _reused(context, prior["sha256"])
    return _run_pipeline(options, archive_path, name, context)


def _ingest_with_ledger(options: IngestOptions, archive_path: str, name: VacationName,
                        context: RunContext, ledger: Ledger) -> dict:
    """The ledger decides whether this run may ingest, and makes its rows visible at the end."""
    vacation_id = name.vacation_id
    claim = ledger.claim(vacation_id, name.business_date, name.slot, context.sha256,
                         datetime.datetime.fromisoformat(context.received_at), archive_path,
                         replay=options.replay)
    if claim.outcome == "duplicate":
        _LOG.info("%s: this archive was already ingested (%s)", vacation_id, claim.prior.state)
        if claim.prior.delivered_at is None:  # a crash after loading: finish the job
            _deliver(options, ledger, vacation_id)
        return _duplicate(claim.prior.summary.document, context.received_at)
    if claim.outcome == "reused":
        return _reused(context, claim.prior.sha256)
    with ledger.renewing(vacation_id):
        outcome = _load(options, archive_path, name, context, ledger, claim)
    _deliver(options, ledger, vacation_id)
    return outcome


def _load(options: IngestOptions, archive_path: str, name: VacationName, context: RunContext,
          ledger: Ledger, claim: Claim) -> dict:
    """The claimed vacation's run, from a clean structured zone to LOADED, REJECTED or
    FAILED."""
    vacation_id = name.vacation_id
    zone = StructuredZone(ledger.session, ledger)
    if claim.prior is not None:  # a run again starts from nothing: no row of an earlier one
        _LOG.info("%s: removing what its earlier run (%s) wrote: %s", vacation_id,
                  claim.prior.state, zone.purge(vacation_id, rows=ledger.rows_left(vacation_id)))
    try:
        outcome = _run_pipeline(options, archive_path, name, context)
    except Exception as error:
        _fail(ledger, vacation_id, error)
        raise
    judged = Summary(outcome)
    if judged.status == Outcome.REJECTED:
        ledger.advance(vacation_id, State.LANDED, State.REJECTED,
                       ", ".join(error.code for error in judged.errors), summary=judged)
        deleted = zone.purge(vacation_id, keep_rejects=True)
        ledger.deleted(vacation_id, State.REJECTED, context.sha256, "rolled back automatically",
                       deleted)
        _LOG.info("%s: rolled back what the rejected vacation wrote: %s", vacation_id, deleted)
        _record_quality(ledger, outcome, State.REJECTED, None)
    else:
        ledger.advance(vacation_id, State.LANDED, State.VALIDATED, summary=judged)
        held = _record_quality(ledger, outcome, State.VALIDATED, options.quality_hold)
        ledger.advance(vacation_id, State.VALIDATED, State.LOADED, "rows visible",
                       delivery_held=held)
        if held:
            ledger.note(vacation_id, State.LOADED, None, f"delivery held: {held}; an operator "
                        "releases it from the console")
    return outcome


def _record_quality(ledger: Ledger, outcome: dict, state: State,
                    hold: Optional[str]) -> Optional[str]:
    """Keeps the vacation's metrics and findings, tells its story in the ledger, and says why
    its delivery is held, if it is (``--quality-hold``)."""
    judged = outcome.get("quality")
    if judged is None:
        return None
    quality.QualityStore(ledger.session).record(outcome)
    ledger.note(outcome["vacation_id"], state, None, quality.describe(judged))
    return quality.held_by(judged["findings"], None if hold == "none" else hold)


def _deliver(options: IngestOptions, ledger: Ledger, vacation_id: str) -> None:
    """The outbound package, unless --no-deliver: its own pipeline, after the ledger says the
    vacation's rows are final."""
    if options.no_deliver:
        return
    config = options.view_as(CassandraOptions).cassandra_config()
    try:
        deliver(ledger.session, config, vacation_id, options.outbound_root or options.zones_root,
                pipeline_options=options)
    except DeliveryHeld as held:
        _LOG.warning("%s", held)


def _fail(ledger: Ledger, vacation_id: str, error: Exception) -> None:
    """Best effort: the database may be what failed."""
    try:
        ledger.advance(vacation_id, State.LANDED, State.FAILED, str(error)[:500],
                       errors=[FatalError("PLATFORM_FAILURE", str(error)[:2000])])
    except Exception as ledger_error:  # noqa: BLE001 - the first error is the one to report
        _LOG.error("%s: could not record FAILED in the ledger: %s", vacation_id, ledger_error)
