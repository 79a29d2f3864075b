"""Logical backups of the structured zone: every table as Avro files, a manifest, and back.

A backup is a folder ``<root>/<backup id>/`` (local or ``gs://``)::

    <table>/part-<uuid>.avro    one Avro schema per table, derived from its CQL column types
    manifest.json               written last: a backup without it is incomplete

The manifest holds each table's CREATE statement, columns and key, its files with their row
counts and sha256, the migrations the keyspace had, its replication (the spec ``cre db migrate``
takes; absent from backups made before it was recorded, null when no spec says it), and the
ledger at backup time: the backup is consistent only if no vacation was being loaded (LANDED,
VALIDATED) and none changed state while the tables were read. Files are hashed and counted as
they are written, never read back.

A restore creates the target keyspace with the replication asked for, else the backup's, else
``DEFAULT_REPLICATION`` (refused when the cluster has too few nodes for it), migrates it with
this version's migrations, checks every file, loads the data tables, and the ledger
(``vacations``) last, in a second pipeline: a row is served only once its vacation's ledger row
is back, so no vacation is ever seen half restored.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import importlib.metadata
import io
import json
import logging
import posixpath
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any, NamedTuple, Optional

import apache_beam as beam
import fastavro
import pyarrow as pa
from apache_beam.io.avroio import ReadAllFromAvro
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from io_connectors import cql_values, zones
from io_connectors.cassandra import ReadFromCassandra, WriteToCassandra
from io_connectors.cassandra_client import SESSIONS, CassandraConfig
from pipelines.ledger import IN_PROGRESS, Ledger
from pipelines.options import CassandraOptions
from pipelines.progress import Bar
from pipelines.schema_migrations import (
    DEFAULT_REPLICATION,
    REPLICATION_FROM,
    chosen_replication,
    keyspace_replication,
    migrate,
    migrations,
    nodes_per_datacenter,
    replication_problem,
    replication_spec,
    same_replication,
)
from transforms.contract import PlatformError

_LOG = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = 1
# the target keyspace's own record of `cre db migrate`, which the restore runs: restoring the
# source's rows would claim migrations were applied when they were not; the manifest keeps them
SKIPPED_TABLES = frozenset({"schema_migrations"})
LEDGER_TABLE = "vacations"
BATCH_ROWS = 5000
FILE_ROWS = 1_000_000
_SYNC_INTERVAL = 1 << 20  # Avro block size: larger blocks compress better, memory stays flat
_BACKED_UP = Bar("backup: rows read", "rows")
_VERIFIED = Bar("verify: files checked", "files")  # file by file, in the driver
_RESTORED = Bar("restore: rows sent", "rows")  # to the writer


class BackupError(PlatformError):
    """A backup refused, damaged or not restorable: said in one line (``cre`` exits 1)."""


# --- CQL types -> Avro and Arrow ----------------------------------------------------------


def _same(value: Any) -> Any:
    return value


def _utc(value: datetime.datetime) -> datetime.datetime:
    """The driver's timestamps are naive UTC; fastavro would read a naive one as local time."""
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


@dataclasses.dataclass(frozen=True)
class AvroKind:
    """How one CQL type is stored: its Avro type, its Arrow type when loaded back (None: as
    inferred from the values), and the conversions of a non-null value each way."""

    avro: Any
    arrow: Optional[pa.DataType]
    to_avro: Callable[[Any], Any] = _same
    from_avro: Callable[[Any], Any] = _same


_TEXT = AvroKind("string", pa.string())
_SCALARS: dict[str, AvroKind] = {
    "text": _TEXT, "varchar": _TEXT, "ascii": _TEXT,
    "int": AvroKind("int", pa.int32()), "smallint": AvroKind("int", pa.int16()),
    "tinyint": AvroKind("int", pa.int8()), "bigint": AvroKind("long", pa.int64()),
    "boolean": AvroKind("boolean", pa.bool_()),
    "float": AvroKind("float", pa.float32()), "double": AvroKind("double", pa.float64()),
    "date": AvroKind({"type": "int", "logicalType": "date"}, pa.date32()),
    "timestamp": AvroKind({"type": "long", "logicalType": "timestamp-millis"},
                          pa.timestamp("ms", tz="UTC"), _utc),
    "uuid": AvroKind({"type": "string", "logicalType": "uuid"}, pa.uuid()),
    "timeuuid": AvroKind({"type": "string", "logicalType": "uuid"}, pa.uuid()),
    # a CQL decimal has a scale per value, an Avro decimal one per schema: keep the exact text
    "decimal": AvroKind("string", None, str, Decimal),
}


def avro_kind(cql_type: str) -> AvroKind:
    """The storage of a CQL type: the scalars above, and ``map<text, V>`` of those."""
    if map_types := cql_values.map_types(cql_type):
        key, item = (_SCALARS.get(name) for name in map_types)
        if key is _TEXT and item is not None and item.arrow is not None:
            return AvroKind(
                {"type": "map", "values": item.avro}, pa.map_(key.arrow, item.arrow),
                lambda pairs: {name: item.to_avro(value) for name, value in pairs},
                lambda mapping: [(name, item.from_avro(value)) for name, value in mapping.items()])
    elif cql_type in _SCALARS:
        return _SCALARS[cql_type]
    raise BackupError(f"no Avro mapping for the CQL type {cql_type}")


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    cql_type: str
    kind: str  # partition_key, clustering, static or regular (system_schema.columns)


@dataclasses.dataclass(frozen=True)
class TableSchema:
    """A table as system_schema describes it: columns in key order, then the others."""

    name: str
    columns: tuple[Column, ...]
    create: str

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    def key(self, kind: str) -> list[str]:
        return [column.name for column in self.columns if column.kind == kind]

    def avro_schema(self) -> dict:
        """Key columns are never null; every other column is ``["null", T]``."""
        fields = []
        for column in self.columns:
            avro = avro_kind(column.cql_type).avro
            fields.append({"name": column.name, "type": avro} if column.kind in _KEY_KINDS
                          else {"name": column.name, "type": ["null", avro], "default": None})
        return {"type": "record", "name": self.name, "fields": fields}

    def manifest_entry(self) -> dict:
        return {"create": self.create,
                "columns": [{"name": c.name, "type": c.cql_type, "kind": c.kind}
                            for c in self.columns],
                "primary_key": {"partition": self.key("partition_key"),
                                "clustering": self.key("clustering")}}

    @classmethod
    def from_manifest(cls, name: str, entry: dict) -> TableSchema:
        return cls(name, tuple(Column(c["name"], c["type"], c["kind"]) for c in entry["columns"]),
                   entry["create"])


_KEY_KINDS = ("partition_key", "clustering")
_KIND_ORDER = {"partition_key": 0, "clustering": 1, "static": 2, "regular": 3}


def discover(session, keyspace: str) -> list[TableSchema]:
    """Every table of the keyspace but ``SKIPPED_TABLES``, from system_schema."""
    names = sorted(name for (name,) in session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,))
        if name not in SKIPPED_TABLES)
    columns: dict[str, list[tuple]] = {name: [] for name in names}
    for table, name, kind, position, cql_type in session.execute(
            "SELECT table_name, column_name, kind, position, type FROM system_schema.columns "
            "WHERE keyspace_name = %s", (keyspace,)):
        if table in columns:
            columns[table].append((_KIND_ORDER[kind], position, name, Column(name, cql_type, kind)))
    metadata = session.cluster.metadata.keyspaces[keyspace].tables
    schemas = [TableSchema(name, tuple(column for *_, column in sorted(columns[name])),
                           metadata[name].export_as_string()) for name in names]
    for schema in schemas:
        for column in schema.columns:
            try:
                avro_kind(column.cql_type)
            except BackupError as error:
                raise BackupError(f"{schema.name}.{column.name}: {error}") from None
    return schemas


def avro_records(table: pa.Table, schema: TableSchema) -> Iterator[dict]:
    """A batch of rows (as ``ReadFromCassandra`` gives them) as Avro records."""
    converters = [(column.name, avro_kind(column.cql_type).to_avro) for column in schema.columns]
    for row in table.to_pylist():
        yield {name: None if row[name] is None else convert(row[name])
               for name, convert in converters}


def arrow_table(records: Sequence[dict], schema: TableSchema) -> pa.Table:
    """Avro records back as a batch of rows ``WriteToCassandra`` writes."""
    columns = {}
    for column in schema.columns:
        kind = avro_kind(column.cql_type)
        columns[column.name] = pa.array(
            [None if record[column.name] is None else kind.from_avro(record[column.name])
             for record in records], type=kind.arrow)
    return pa.table(columns)


# --- writing a backup ----------------------------------------------------------------------


class BackupFile(NamedTuple):
    table: str
    path: str  # relative to the backup folder
    rows: int
    bytes: int
    sha256: str


class _Hashing(io.RawIOBase):
    """Hashes and counts the bytes on their way to or from a file: the check needs no second
    pass over it."""

    def __init__(self, handle):
        super().__init__()
        self._handle = handle
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def _count(self, data) -> int:
        self.sha256.update(data)
        self.bytes += len(data)
        return len(data)

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._handle.write(data)
        return self._count(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._handle.read(len(buffer))
        buffer[:len(data)] = data
        return self._count(data)


class _AvroFile:
    """One open part file of a table."""

    def __init__(self, folder: str, schema: TableSchema, parsed: dict, codec: str):
        self._schema = schema
        self.path = posixpath.join(schema.name, f"part-{uuid.uuid4().hex}.avro")
        self._handle = FileSystems.create(zones.join(folder, self.path),
                                          compression_type=CompressionTypes.UNCOMPRESSED)
        self._hashing = _Hashing(self._handle)
        self._writer = fastavro.write.Writer(self._hashing, parsed, codec=codec,
                                             sync_interval=_SYNC_INTERVAL)
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        for record in avro_records(table, self._schema):
            self._writer.write(record)
        self.rows += table.num_rows

    def close(self) -> BackupFile:
        self._writer.flush()
        self._handle.close()
        return BackupFile(self._schema.name, self.path, self.rows, self._hashing.bytes,
                          self._hashing.sha256.hexdigest())


class _WriteAvroFn(beam.DoFn):
    """A table's batches into Avro files: one per bundle, a new one every ``file_rows``.

    Beam's ``WriteToAvro`` would need a second pass over each file to hash and count it. A
    retried bundle may leave a file no manifest lists: it is never read.
    """

    def __init__(self, folder: str, schema: TableSchema, codec: str, file_rows: int):
        self._folder = folder
        self._schema = schema
        self._codec = codec
        self._file_rows = file_rows
        self._rows = beam.metrics.Metrics.counter(f"backup.{schema.name}", "rows_backed_up")

    def setup(self) -> None:
        self._parsed = fastavro.parse_schema(self._schema.avro_schema())

    def start_bundle(self) -> None:
        self._file: Optional[_AvroFile] = None

    def process(self, table: pa.Table) -> Iterator[BackupFile]:
        if self._file is None:
            self._file = _AvroFile(self._folder, self._schema, self._parsed, self._codec)
        self._file.write(table)
        self._rows.inc(table.num_rows)
        _BACKED_UP.advance(table.num_rows)
        if self._file.rows >= self._file_rows:
            yield self._close()

    def finish_bundle(self) -> Iterator[WindowedValue]:
        if self._file is not None:
            window = GlobalWindow()
            yield WindowedValue(self._close(), window.max_timestamp(), [window])

    def _close(self) -> BackupFile:
        done, self._file = self._file.close(), None
        return done


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class _WriteManifestFn(beam.DoFn):
    """Writes the manifest once every file is closed; reads the ledger again to say whether a
    vacation changed state while the tables were read."""

    def __init__(self, config: CassandraConfig, folder: str, header: dict):
        self._config = config
        self._folder = folder
        self._header = header

    def setup(self) -> None:
        self._session = SESSIONS.acquire(self._config)

    def process(self, files: list[BackupFile]) -> Iterator[dict]:
        manifest = json.loads(json.dumps(self._header))  # a copy a retried bundle can fill again
        for file in sorted(files, key=lambda file: (file.table, file.path)):
            entry = manifest["tables"][file.table]
            entry["files"].append({"path": file.path, "rows": file.rows, "bytes": file.bytes,
                                   "sha256": file.sha256})
            entry["rows"] += file.rows
        ledger = manifest["ledger"]
        at_end = Ledger(self._session).states()
        ledger["changed_during_backup"] = sorted(
            vacation_id for vacation_id in set(at_end) | set(ledger["vacations"])
            if at_end.get(vacation_id) != ledger["vacations"].get(vacation_id))
        manifest["consistent"] = not (ledger["in_progress"] or ledger["changed_during_backup"])
        manifest["rows"] = sum(entry["rows"] for entry in manifest["tables"].values())
        manifest["finished_at"] = _now()
        zones.write_atomically(zones.join(self._folder, MANIFEST),
                    json.dumps(manifest, indent=2, sort_keys=True).encode())
        yield manifest

    def teardown(self) -> None:
        SESSIONS.release(self._config)


class BackupKeyspace(beam.PTransform):
    """Reads every table with ``ReadFromCassandra`` into Avro files under ``folder``, then
    writes the manifest (``header`` completed with the files); returns the manifest."""

    def __init__(self, config: CassandraConfig, tables: Sequence[TableSchema], folder: str,
                 header: dict, codec: str = "deflate", file_rows: int = FILE_ROWS):
        super().__init__()
        self._config = config
        self._tables = tuple(tables)
        self._folder = folder
        self._header = header
        self._codec = codec
        self._file_rows = file_rows

    def expand(self, pbegin):
        files = [pbegin
                 | f"Read[{table.name}]" >> ReadFromCassandra(
                     self._config, table.name, table.column_names, page_rows=BATCH_ROWS)
                 | f"Write[{table.name}]" >> beam.ParDo(
                     _WriteAvroFn(self._folder, table, self._codec, self._file_rows))
                 for table in self._tables]
        return (files
                | "AllFiles" >> beam.Flatten()
                | "ListFiles" >> beam.combiners.ToList()
                | "WriteManifest" >> beam.ParDo(
                    _WriteManifestFn(self._config, self._folder, self._header)))

    def display_data(self) -> dict:
        return {"keyspace": self._config.keyspace, "folder": self._folder, "codec": self._codec,
                "tables": ",".join(table.name for table in self._tables)}


def _cre_version() -> str:
    return importlib.metadata.version("cre-integration")


def _recorded_replication(session, keyspace: str) -> Optional[str]:
    """The keyspace's replication as a spec, or None (logged) when no spec says it."""
    try:
        return replication_spec(keyspace_replication(session, keyspace) or {})
    except ValueError as error:
        _LOG.warning("%s: the backup records no replication; a restore takes --replication or "
                     "%s", error, DEFAULT_REPLICATION)
        return None


def backup(config: CassandraConfig, root: str, options: PipelineOptions, force: bool = False,
           codec: str = "deflate") -> dict:
    """Backs the keyspace up under ``root``; returns the manifest.

    Refused (``BackupError``) while a vacation is being loaded, unless ``force``: the backup
    would hold part of its rows. The manifest then says it is not consistent, and why.
    """
    session = config.connect(config.keyspace)
    try:
        tables = discover(session, config.keyspace)
        vacations = Ledger(session).states()
        applied = [{"version": version, "name": name, "checksum": checksum} for
                   version, name, checksum in session.execute(
                       "SELECT version, name, checksum FROM schema_migrations")]
        replication = _recorded_replication(session, config.keyspace)
    finally:
        session.cluster.shutdown()
    in_progress = sorted(vacation_id for vacation_id, row in vacations.items()
                         if row["state"] in IN_PROGRESS)
    if in_progress and not force:
        raise BackupError(
            f"{', '.join(in_progress)} being loaded (LANDED or VALIDATED): a backup now would "
            "hold part of its rows; wait for the ingest, or --force (the manifest then says so)")
    for vacation_id in in_progress:
        _LOG.warning("%s is %s: the backup holds whatever part of its rows is written",
                     vacation_id, vacations[vacation_id]["state"])
    created = datetime.datetime.now(datetime.UTC)
    backup_id = f"{config.keyspace}-{created:%Y%m%dT%H%M%SZ}"
    folder = zones.join(root, backup_id)
    header = {"format": FORMAT, "backup_id": backup_id, "keyspace": config.keyspace,
              "created_at": created.isoformat(timespec="seconds"), "cre_version": _cre_version(),
              "codec": codec, "migrations": sorted(applied, key=lambda m: m["version"]),
              "replication": replication,
              "ledger": {"vacations": vacations, "in_progress": in_progress},
              "tables": {table.name: {**table.manifest_entry(), "rows": 0, "files": []}
                         for table in tables}}
    _BACKED_UP.start()
    with beam.Pipeline(options=options) as pipeline:
        _ = pipeline | "Backup" >> BackupKeyspace(config, tables, folder, header, codec)
    manifest = read_manifest(folder)
    manifest["path"] = folder
    return manifest


# --- checking and restoring ----------------------------------------------------------------


def read_manifest(folder: str) -> dict:
    path = zones.join(folder, MANIFEST)
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            manifest = json.loads(handle.read())
    except Exception as error:  # missing, unreadable or not JSON: one cause, one line
        raise BackupError(f"{path}: no readable manifest ({type(error).__name__}); the "
                          "backup is incomplete or damaged") from error
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT}")
    return manifest


def check_file(folder: str, expected: dict) -> Optional[str]:
    """What is wrong with one backup file (decoding, rows, size, sha256), or None."""
    path = zones.join(folder, expected["path"])
    if not FileSystems.exists(path):
        return "missing"
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        hashing = io.BufferedReader(_Hashing(handle), 1 << 20)
        try:
            rows = sum(1 for _ in fastavro.reader(hashing))
        except Exception as error:  # fastavro raises many types for corrupt bytes
            return f"does not decode ({type(error).__name__}: {str(error)[:80]})"
        while hashing.read(1 << 20):
            pass
        digest, size = hashing.raw.sha256.hexdigest(), hashing.raw.bytes
    if digest != expected["sha256"] or size != expected["bytes"]:
        return f"sha256 {digest} ({size} bytes), the manifest says {expected['sha256']} " \
               f"({expected['bytes']} bytes)"
    if rows != expected["rows"]:
        return f"{rows} rows, the manifest says {expected['rows']}"
    return None


def verify(folder: str) -> tuple[dict, list[str]]:
    """The manifest, and one line per damaged file (none: the backup is whole)."""
    manifest = read_manifest(folder)
    damaged = []
    _VERIFIED.start(sum(len(entry["files"]) for entry in manifest["tables"].values()))
    for entry in manifest["tables"].values():
        for file in entry["files"]:
            problem = check_file(folder, file)
            if problem:
                damaged.append(f"{zones.join(folder, file['path'])}: {problem}")
            _VERIFIED.advance()
    return manifest, damaged


def _to_restore(records: Sequence[dict], schema: TableSchema) -> pa.Table:
    _RESTORED.advance(len(records))
    return arrow_table(records, schema)


class RestoreTable(beam.PTransform):
    """A table's Avro files into a table of the same columns, in batches of ``BATCH_ROWS``."""

    def __init__(self, config: CassandraConfig, schema: TableSchema, paths: Sequence[str],
                 **writer: int):
        """``writer``: ``WriteToCassandra``'s ``max_in_flight`` and ``batch_rows``."""
        super().__init__()
        self._config = config
        self._schema = schema
        self._paths = tuple(paths)
        self._writer = writer

    def expand(self, pbegin):
        return (pbegin
                | "Files" >> beam.Create(self._paths)
                | "ReadAvro" >> ReadAllFromAvro()
                | "Batch" >> beam.BatchElements(min_batch_size=BATCH_ROWS,
                                                max_batch_size=BATCH_ROWS)
                | "ToArrow" >> beam.Map(_to_restore, self._schema)
                | "Write" >> WriteToCassandra(self._config, self._schema.name,
                                              self._schema.column_names, **self._writer))


def _check_target(session, config: CassandraConfig, tables: Iterable[TableSchema]) -> None:
    """The migrated target has every backed-up column with its type, and holds no rows."""
    target = {table.name: table for table in discover(session, config.keyspace)}
    for table in tables:
        have = {column.name: column.cql_type for column in target[table.name].columns} \
            if table.name in target else {}
        missing = [f"{c.name} {c.cql_type}" for c in table.columns
                   if have.get(c.name) != c.cql_type]
        if missing:
            raise BackupError(f"{config.keyspace}.{table.name} lacks {', '.join(missing)} "
                              "after migration")
        if session.execute(f"SELECT * FROM {table.name} LIMIT 1").one() is not None:
            raise BackupError(f"{config.keyspace}.{table.name} already holds rows: restore into "
                              "a new or empty keyspace")


def _check_migrations(manifest: dict) -> None:
    """Every migration the source had is this version's, unchanged: else the restored rows
    may not fit the schema this version builds."""
    known = {version: hashlib.sha256(text.encode()).hexdigest()
             for version, _, text in migrations()}
    for applied in manifest["migrations"]:
        if known.get(applied["version"]) != applied["checksum"]:
            raise BackupError(f"the backup's keyspace had migration {applied['version']:03d}_"
                              f"{applied['name']}, which this version of cre does not have "
                              "(or has changed): restore with the version that made it")


def _load(config: CassandraConfig, folder: str, tables: Sequence[TableSchema],
          files: dict[str, list[str]], options: PipelineOptions) -> dict[str, int]:
    """One pipeline writing ``tables``; the rows each one got (the writer's metric)."""
    pipeline = beam.Pipeline(options=options)
    sink = options.view_as(CassandraOptions)  # cre restore's --cassandra-max-in-flight...
    for table in tables:
        _ = pipeline | f"Restore[{table.name}]" >> RestoreTable(
            config, table, [zones.join(folder, path) for path in files[table.name]],
            max_in_flight=sink.cassandra_max_in_flight, batch_rows=sink.cassandra_batch_rows)
    result = pipeline.run()
    result.wait_until_finish()
    written = {table.name: 0 for table in tables}
    for counter in result.metrics().query(MetricsFilter().with_name("rows_written"))["counters"]:
        table = counter.key.metric.namespace.removeprefix("cassandra.")
        if table in written:
            written[table] += counter.committed or counter.attempted
    return written


class Restoration(NamedTuple):
    """A restore done: the rows per table, the replication its keyspace was created with and
    where that came from (``REPLICATION_FROM``: given, backup, default)."""

    rows: dict[str, int]
    replication: str
    replication_from: str


def _check_replication(config: CassandraConfig, spec: str, source: str) -> None:
    """Refuses a replication the target cluster cannot hold (a data centre it lacks, more
    replicas than nodes), or a target keyspace that exists with another one."""
    session = config.connect()
    try:
        existing = keyspace_replication(session, config.keyspace)
        nodes = nodes_per_datacenter(session.cluster)
    finally:
        session.cluster.shutdown()
    said = f"{spec} ({REPLICATION_FROM[source]})"
    if existing is not None and not same_replication(spec, existing):
        try:
            has = replication_spec(existing)
        except ValueError:
            has = str(existing)
        raise BackupError(f"{config.keyspace} exists with replication {has}, not {said}: drop "
                          f"it, or restore with --replication {has}")
    problem = None if existing is not None else replication_problem(spec, nodes)
    if problem:
        raise BackupError(f"replication {said} does not fit the cluster: {problem}; nothing "
                          "restored: give a --replication it holds")


def restore(folder: str, config: CassandraConfig, replication: Optional[str],
            options: PipelineOptions) -> Restoration:
    """Rebuilds ``config.keyspace`` from the backup in ``folder``, created with ``replication``
    (None: the backup's, else ``DEFAULT_REPLICATION``).

    Refused (``BackupError``) before anything is created when the cluster cannot hold that
    replication, when a file is damaged or the backup needs migrations this version lacks;
    and when the target already holds rows.
    """
    manifest = read_manifest(folder)
    _check_migrations(manifest)
    try:
        spec, source = chosen_replication(replication, manifest.get("replication"))
    except ValueError as error:
        raise BackupError(str(error)) from None
    _check_replication(config, spec, source)
    _, damaged = verify(folder)
    if damaged:
        raise BackupError(f"{folder} is damaged, nothing restored: {damaged[0]}"
                          + (f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else ""))
    migrate(config, spec)
    tables = [TableSchema.from_manifest(name, entry)
              for name, entry in sorted(manifest["tables"].items())]
    session = config.connect(config.keyspace)
    try:
        _check_target(session, config, tables)
    finally:
        session.cluster.shutdown()
    return Restoration(_load_all(config, folder, manifest, tables, options), spec, source)


def _load_all(config: CassandraConfig, folder: str, manifest: dict,
              tables: Sequence[TableSchema], options: PipelineOptions) -> dict[str, int]:
    """The data tables, then the ledger; refused when a table got fewer rows than the
    manifest lists."""
    files = {name: [file["path"] for file in entry["files"]]
             for name, entry in manifest["tables"].items()}
    with_rows = [table for table in tables if files[table.name]]
    written = {table.name: 0 for table in tables}
    _RESTORED.start(manifest["rows"])
    for phase in ([t for t in with_rows if t.name != LEDGER_TABLE],
                  [t for t in with_rows if t.name == LEDGER_TABLE]):
        if phase:
            written.update(_load(config, folder, phase, files, options))
    short = [f"{name} {rows}/{manifest['tables'][name]['rows']}"
             for name, rows in written.items() if rows != manifest["tables"][name]["rows"]]
    if short:
        raise BackupError(f"rows restored differ from the backup's: {', '.join(short)} (the "
                          f"writer's errors are in the log); drop {config.keyspace} and "
                          "restore again")
    return written
