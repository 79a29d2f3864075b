"""OpenLineage run events of the platform's jobs (issue 35): ingest, replay, deliver, rollback
and restore each emit START, then COMPLETE or FAIL, naming the data sets the run read and wrote.

Marquez, DataHub and the other lineage stores take these events; the platform sends them with
the ``openlineage-python`` client, configured as that client is everywhere (``OPENLINEAGE_CONFIG``
or ``openlineage.yml``, ``OPENLINEAGE__TRANSPORT__*`` variables, or ``OPENLINEAGE_URL``): file,
console, HTTP or any transport it knows. With none of them, nothing is emitted (the client
itself would print to the console); ``OPENLINEAGE_DISABLED=true`` turns a configuration off.
An event that cannot be sent is logged and never fails the job.

A run started inside another (the delivery at the end of an ingest) names it as its parent.
Data sets follow OpenLineage's naming: a file is ``file`` + its path, or ``gs://bucket`` + its
object; a Cassandra table is ``cassandra://host:port`` + ``keyspace.table``.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime
import functools
import importlib.metadata
import logging
import os
import posixpath
import traceback
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Optional

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    error_message_run,
    input_statistics_input_dataset,
    job_type_job,
    output_statistics_output_dataset,
    parent_run,
    processing_engine_run,
    schema_dataset,
    tags_run,
)
from openlineage.client.uuid import generate_new_uuid

import schemas
from io_connectors import landing, zones
from io_connectors.cassandra_client import CassandraConfig
from transforms import contract, pivot_package
from transforms.contract import CRE, GESPARAM

_LOG = logging.getLogger(__name__)

INGEST, REPLAY, DELIVER, ROLLBACK, RESTORE = "ingest", "replay", "deliver", "rollback", "restore"
_VERSION = importlib.metadata.version("cre-integration")
PRODUCER = f"urn:cre-integration:{_VERSION}"
_CURRENT: contextvars.ContextVar[Optional[JobRun]] = contextvars.ContextVar(
    "openlineage_run", default=None)


@dataclasses.dataclass(frozen=True)
class Field:
    """A column of a data set's schema, or a member of an archive with its own columns."""

    name: str
    type: Optional[str] = None
    fields: tuple[Field, ...] = ()

    def facet(self) -> schema_dataset.SchemaDatasetFacetFields:
        return schema_dataset.SchemaDatasetFacetFields(
            name=self.name, type=self.type, fields=[field.facet() for field in self.fields])


@dataclasses.dataclass(frozen=True)
class DataSet:
    """A data set a run read or wrote, with what is known of it: rows, bytes, schema."""

    namespace: str
    name: str
    rows: Optional[int] = None
    size: Optional[int] = None
    fields: tuple[Field, ...] = ()

    def _facets(self) -> dict[str, Any]:
        return {"schema": schema_dataset.SchemaDatasetFacet(
            fields=[field.facet() for field in self.fields])} if self.fields else {}

    def as_input(self) -> InputDataset:
        statistics = {} if self.rows is None and self.size is None else {
            "inputStatistics": input_statistics_input_dataset.InputStatisticsInputDatasetFacet(
                rowCount=self.rows, size=self.size)}
        return InputDataset(self.namespace, self.name, facets=self._facets(),
                            inputFacets=statistics)

    def as_output(self) -> OutputDataset:
        statistics = {} if self.rows is None and self.size is None else {
            "outputStatistics":
                output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    rowCount=self.rows, size=self.size)}
        return OutputDataset(self.namespace, self.name, facets=self._facets(),
                             outputFacets=statistics)


def file(path: str, rows: Optional[int] = None, size: Optional[int] = None,
         fields: Sequence[Field] = ()) -> DataSet:
    """A file of a zone: ``gs://bucket`` and its object, or ``file`` and its absolute path."""
    if path.startswith("gs://"):
        bucket, _, name = path[len("gs://"):].partition("/")
        return DataSet(f"gs://{bucket}", name, rows, size, tuple(fields))
    return DataSet("file", os.path.abspath(path), rows, size, tuple(fields))


def table(session: Any, name: str, rows: Optional[int] = None) -> DataSet:
    """A table of the structured zone, its columns as the cluster describes them; named by the
    cluster's first node (by address), so that every run names it alike."""
    endpoint = min((host.endpoint for host in session.cluster.metadata.all_hosts()),
                   key=lambda endpoint: (endpoint.address, endpoint.port))
    keyspace = session.cluster.metadata.keyspaces.get(session.keyspace)
    found = keyspace.tables.get(name) if keyspace else None
    fields = tuple(Field(column.name, column.cql_type)
                   for column in found.columns.values()) if found is not None else ()
    return DataSet(f"cassandra://{endpoint.address}:{endpoint.port}",
                   f"{session.keyspace}.{name}", rows, fields=fields)


@dataclasses.dataclass
class JobRun:
    """One run of a job: the operation adds what it read and wrote as it learns it."""

    job: str
    subject: str  # the vacation, or the keyspace a restore rebuilds: a tag of the run
    run_id: str = dataclasses.field(default_factory=lambda: str(generate_new_uuid()))
    parent: Optional[JobRun] = None
    inputs: list[DataSet] = dataclasses.field(default_factory=list)
    outputs: list[DataSet] = dataclasses.field(default_factory=list)

    def read(self, *data_sets: DataSet) -> None:
        self.inputs.extend(data_sets)

    def wrote(self, *data_sets: DataSet) -> None:
        self.outputs.extend(data_sets)

    def event(self, state: RunState, error: Optional[BaseException] = None) -> RunEvent:
        """The run's event in ``state``: its data sets so far, its error when it failed."""
        facets: dict[str, Any] = {
            "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
                version=_VERSION, name="cre-integration"),
            # what the run was of, for a lineage server's search (the client adds its own)
            "tags": tags_run.TagsRunFacet(tags=[tags_run.TagsRunFacetFields(
                "keyspace" if self.job == RESTORE else "vacation_id", self.subject,
                "CRE_INTEGRATION")])}
        if self.parent is not None:
            facets["parent"] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=self.parent.run_id),
                job=parent_run.Job(namespace=namespace(), name=f"cre.{self.parent.job}"))
        if error is not None:
            facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=str(error) or type(error).__name__, programmingLanguage="PYTHON",
                stackTrace="".join(traceback.format_exception(error)))
        return RunEvent(
            eventType=state, eventTime=datetime.datetime.now(datetime.UTC).isoformat(),
            run=Run(runId=self.run_id, facets=facets),
            job=Job(namespace=namespace(), name=f"cre.{self.job}", facets={
                "jobType": job_type_job.JobTypeJobFacet(
                    processingType="BATCH", integration="APACHE_BEAM", jobType="JOB")}),
            producer=PRODUCER, inputs=[data_set.as_input() for data_set in _unique(self.inputs)],
            outputs=[data_set.as_output() for data_set in _unique(self.outputs)])


def _unique(data_sets: Iterable[DataSet]) -> list[DataSet]:
    """The last word on each data set (a run may name one twice as it learns more)."""
    return list({(data_set.namespace, data_set.name): data_set
                 for data_set in data_sets}.values())


def namespace() -> str:
    """The jobs' namespace: ``$OPENLINEAGE_NAMESPACE``, the client's convention, else ours."""
    return os.environ.get("OPENLINEAGE_NAMESPACE") or "cre-integration"


def enabled() -> bool:
    """Whether events are sent: a job describes its data sets only then."""
    return _client() is not None


@functools.cache
def _client() -> Optional[OpenLineageClient]:
    """The client when its configuration names a transport; None otherwise (off)."""
    if os.environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return None
    # where the client looks, in its order; asked first, since a client made without any
    # falls back to printing every event on the console
    configured = (os.environ.get("OPENLINEAGE_URL")
                  or any(name.startswith("OPENLINEAGE__TRANSPORT") for name in os.environ)
                  or OpenLineageClient._find_yaml_config_path())  # noqa: SLF001
    return OpenLineageClient() if configured else None


def _emit(run: JobRun, state: RunState, error: Optional[BaseException] = None) -> None:
    client = _client()
    if client is None:
        return
    try:
        client.emit(run.event(state, error))
    except Exception as failure:  # noqa: BLE001 - lineage never fails the job it describes
        _LOG.warning("OpenLineage: the %s event of %s (run %s) was not sent: %s", state.value,
                     run.job, run.run_id, failure)


@contextlib.contextmanager
def job_run(job: str, subject: str, inputs: Sequence[DataSet] = ()) -> Iterator[JobRun]:
    """Emits START (with the ``inputs`` known before the run), runs the block (which names the
    other data sets on the ``JobRun``), then COMPLETE, or FAIL with the error that ends it."""
    run = JobRun(job, subject, parent=_CURRENT.get(), inputs=list(inputs))
    token = _CURRENT.set(run)
    _emit(run, RunState.START)
    try:
        yield run
    except BaseException as error:
        _emit(run, RunState.FAIL, error)
        raise
    else:
        _emit(run, RunState.COMPLETE)
    finally:
        _CURRENT.reset(token)


# --- the data sets of each job -----------------------------------------------------------------

STRUCTURED_TABLES = {CRE: ("cre_events_by_account", "cre_event_versions", "cre_days_by_vacation"),
                     GESPARAM: ("gesparam_versions",)}
PACKAGE_FIELDS = (
    Field(pivot_package.ACK, "json"),
    Field(pivot_package.REJECTS, "csv",
          tuple(Field(name) for name in pivot_package.REJECT_COLUMNS)),
    Field(pivot_package.POSITIONS, "csv",
          tuple(Field(name) for name in pivot_package.POSITION_COLUMNS)),
    Field(pivot_package.MANIFEST, "json"))


def _avro_type(declared: Any) -> str:
    if isinstance(declared, list):
        return "|".join(_avro_type(one) for one in declared)
    if isinstance(declared, dict):
        return declared.get("logicalType") or _avro_type(declared["type"])
    return str(declared)


def avro_fields(output_type: str) -> tuple[Field, ...]:
    """The fields of a Proxy Producer output type's Avro schema."""
    return tuple(Field(field["name"], _avro_type(field["type"]))
                 for field in schemas.definition(output_type)["fields"])


def archive_fields(members: Iterable[dict]) -> tuple[Field, ...]:
    """A vacation archive's schema: its data members (the summary's), each with its columns."""
    return tuple(Field(member["name"], member["type"],
                       tuple(Field(column) for column in contract.COLUMNS[member["type"]]))
                 for member in members)


def tables(session: Any, rows: dict[str, Optional[int]]) -> list[DataSet]:
    """Tables of the structured zone with their rows (None: not counted)."""
    return [table(session, name, count) for name, count in rows.items()]


@contextlib.contextmanager
def connected(config: CassandraConfig) -> Iterator[Any]:
    """A session of its own, for a job that names tables it wrote through Beam."""
    session = config.connect(config.keyspace)
    try:
        yield session
    finally:
        session.cluster.shutdown()


def ingested(run: JobRun, source: str, zones_root: str, config: Optional[CassandraConfig],
             summary: dict) -> None:
    """What an ingest wrote: the landed archive, each file of the Proxy Producer zone, and the
    structured zone's tables, with their rows."""
    name = contract.VacationName.parse(posixpath.basename(source))
    members = summary.get("members") or []
    if name is not None and summary.get("sha256"):
        landed = landing.landed_path(source, zones_root, name.business_date, name.vacation_id,
                                     summary["sha256"])
        run.wrote(file(landed, summary.get("totals", {}).get("records"),
                       fields=archive_fields(members)))
    record = zones.ProxyZone(zones_root).commit_record(summary["vacation_id"]) or {}
    run.wrote(*(file(item["path"], item["records"], fields=avro_fields(item["type"]))
                for item in record.get("files", [])))
    if config is not None and summary.get("status") != contract.Outcome.REJECTED:
        loaded = {kind: sum(member["loaded"] for member in members if member["type"] == kind)
                  for kind in STRUCTURED_TABLES}
        rows = {name: loaded[kind] if name != "cre_days_by_vacation" else None
                for kind, names in STRUCTURED_TABLES.items() for name in names}
        rows["rejects_by_vacation"] = summary.get("totals", {}).get("rejected")
        with connected(config) as session:
            run.wrote(*tables(session, rows))
