"""Loads the CRE rows of one vacation into Cassandra with the tools people use today, and times it.

Why: before writing our own loader we want the numbers of the usual ones on this very machine
(2 cores, Cassandra on the same host) for the same rows and the same two tables. Run as
``.venv/bin/python -m bench.loaders ARCHIVE`` (prints rows/s for each tool).

What is timed: only each tool's load of both tables (``cre_events_by_account`` then
``cre_event_versions``), process start included, as wall-clock seconds. Not timed: unpacking
the archive into the tools' CSVs (:func:`prepare_tool_csvs`), dropping and re-creating the
tables, and the checks afterwards (a token-range ``count(*)`` scan of each table with the Python
driver, compared with the CSV's record count, and a field-by-field comparison of sampled rows:
the first rows, rows with quotes, line breaks, a ``;``, an empty label or IBAN, a negative
amount).

Input CSVs (shared by both tools): UTF-8, ``,``-delimited, ``"`` quoting with doubled quotes
inside a quoted value, ``\\n`` record ends, one header line; an empty value means null;
``event_ts`` kept as sent (``2026-11-22T09:15:00+01:00``), ``value_date`` ``2026-11-22``,
``amount`` ``-1234.56``.

Settings of cqlsh (PyPI cqlsh 6.2.2, one ``cqlsh -f SCRIPT`` process per table, see
:func:`cqlsh_inputs`): ``COPY ... FROM`` with ``HEADER=true, DELIMITER=',', QUOTE='"',
ESCAPE='"'`` (cqlsh's default escape ``\\`` turns off the doubling of quotes), ``NULL=''``,
``DATETIMEFORMAT='%Y-%m-%dT%H:%M:%S%z'`` (without it cqlsh falls back to a regex that does not
know the ``T`` and silently loads midnight), ``NUMPROCESSES=2`` (its default is cores - 1 = 1;
1 and 2 were within noise of each other here, 3 slower), ``CHUNKSIZE=5000, MAXBATCHSIZE=20,
MINBATCHSIZE=10, INGESTRATE=100000, PREPAREDSTATEMENTS=true`` (its defaults, written out),
``MAXPARSEERRORS=0, MAXINSERTERRORS=0`` (fail instead of skipping rows; a batch it sends again
after a timeout, "will retry later", is no failure, one it gives up on is). COPY FROM cannot load
a quoted value holding a line break (it counts lines as rows and stalls), so the records with
one (0.5 % of generated labels) follow in the same script as ``BEGIN UNLOGGED BATCH`` of
:data:`CQLSH_INSERTS_PER_BATCH` INSERTs, timed with the rest.

Settings of DSBulk 1.10.0 (jars from Maven Central via ``bench/dsbulk/pom.xml``, cached in
``var/dsbulk-lib``; one JVM per table, ``java -cp 'var/dsbulk-lib/*'
com.datastax.oss.dsbulk.runner.DataStaxBulkLoader load``, the JVM's default heap): the format
options ``-header true -delim , -quote '"\\""' -escape '"\\""'`` (HOCON strings; DSBulk's
default escape is ``\\``), ``--codec.timestamp ISO_OFFSET_DATE_TIME --codec.date
ISO_LOCAL_DATE``, ``-maxErrors 0``, ``--log.directory var/dsbulk-logs``; for speed
:data:`DSBULK_TUNING` = ``--batch.mode REPLICA_SET`` (batches of up to
``batch.maxBatchStatements=32`` statements per replica set, the same idea as cqlsh's batches per
replica; DSBulk's default ``PARTITION_KEY`` only batches rows of one partition, which these
tables almost never have twice, and was 3 times slower here); everything else DSBulk's defaults
(``engine.maxConcurrentQueries=AUTO``, ``executor.maxInFlight`` and ``maxPerSecond`` unlimited,
``schema.nullToUnset=true``, consistency ``LOCAL_ONE``). ``main --dsbulk-defaults`` measures
DSBulk without :data:`DSBULK_TUNING`.

On a cluster (``bench/bench.py``'s three-node comparison) each tool is given the keyspace's
``replication`` (a CQL map, instead of SimpleStrategy RF 1) and the ``consistency`` of its writes,
the one ``cre ingest`` writes at there (``CONSISTENCY`` at the top of cqlsh's script, which its
COPY FROM takes; DSBulk's ``-cl``); the checks afterwards read at that consistency too.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

from pipelines import schema_migrations

ROOT = Path(__file__).resolve().parents[1]
VAR = ROOT / "var"
DSBULK_POM = ROOT / "bench" / "dsbulk" / "pom.xml"
DSBULK_LIB = VAR / "dsbulk-lib"  # shared by every run: fetched once per machine
DSBULK_LOGS = VAR / "dsbulk-logs"
CQLSH_ERRORS = VAR / "cqlsh-errors"
CQLSH = Path(sys.executable).with_name("cqlsh")
DSBULK_MAIN = "com.datastax.oss.dsbulk.runner.DataStaxBulkLoader"

KEYSPACE = "bench_tools"
CRE_COLUMNS = ("cre_id", "account_id", "event_type", "event_ts", "value_date", "amount",
               "currency", "counterparty_iban", "label")
TABLES: dict[str, tuple[str, ...]] = {
    "cre_events_by_account": ("account_id", "month", "value_date", "cre_id", "vacation_id",
                              "event_type", "event_ts", "amount", "currency",
                              "counterparty_iban", "label"),
    "cre_event_versions": ("cre_id", "vacation_id", "account_id", "value_date", "currency"),
}
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "cre_events_by_account": ("account_id", "month", "value_date", "cre_id", "vacation_id"),
    "cre_event_versions": ("cre_id", "vacation_id"),
}
PARTITION_KEYS: dict[str, tuple[str, ...]] = {
    "cre_events_by_account": ("account_id", "month"),
    "cre_event_versions": ("cre_id",),
}


def _structured_zone_ddl() -> list[str]:
    """The migrations' own statements for the two CRE tables and their index: the tools load
    into exactly the tables ``cre ingest`` loads (columns, clustering, the SAI index on
    ``cre_event_versions.vacation_id`` that query 6 and the delivery read by)."""
    return [statement for _, _, text in schema_migrations.migrations()
            for statement in schema_migrations.statements(text)
            if re.search(r"\b(?:TABLE IF NOT EXISTS|ON) (?:cre_events_by_account|"
                         r"cre_event_versions)\b", statement)]


CQLSH_INSERTS_PER_BATCH = 10  # stays under batch_size_warn_threshold (5 KiB)
_UNQUOTED = {"month", "amount"}  # int and decimal literals
CQLSH_OPTIONS = {
    "HEADER": "true", "DELIMITER": ",", "QUOTE": '"', "ESCAPE": '"', "NULL": "",
    "DATETIMEFORMAT": "%Y-%m-%dT%H:%M:%S%z", "NUMPROCESSES": "2",
    "CHUNKSIZE": "5000", "MAXBATCHSIZE": "20", "MINBATCHSIZE": "10",
    "INGESTRATE": "100000", "PREPAREDSTATEMENTS": "true", "MAXPARSEERRORS": "0",
    "MAXINSERTERRORS": "0",
}
DSBULK_OPTIONS = (
    "-header", "true", "-delim", ",", "-quote", '"\\""', "-escape", '"\\""',  # HOCON strings
    "--codec.timestamp", "ISO_OFFSET_DATE_TIME", "--codec.date", "ISO_LOCAL_DATE",
    "-maxErrors", "0", "--monitoring.reportRate", "1 minute",
)
DSBULK_TUNING = ("--batch.mode", "REPLICA_SET")

_CRE_MEMBER = re.compile(r"^(?:[^/]+/)?CRE_\d{4}\.csv$")
_ARCHIVE = re.compile(r"^(BAF_\d{8}_\d{2})\.tar\.bz2$")
_SAMPLES_PER_KIND = 3
_CQLSH_COPY_TIME = re.compile(r"rows imported from \d+ files? in (?:(\d+) days?, (\d+) hours?, "
                              r"(\d+) minutes?, and )?([\d.]+) seconds")
_CQLSH_TROUBLE = re.compile(r"Error|Exception|Failed to import|aborting")
# a batch cqlsh will send again (a write timeout of an overloaded cluster): not a failure unless
# it gives up on it ("given up after N attempts"), and the count afterwards checks the rest
_CQLSH_RETRY = re.compile(r"^.*Failed to import \d+ rows: .*will retry later, "
                          r"attempt \d+ of \d+\s*$", re.MULTILINE)


# ---------------------------------------------------------------------------------------------
# Preparation (not timed)


class _Unseekable(io.RawIOBase):
    """A tar member of a stream-mode (``r|bz2``) archive as a raw stream TextIOWrapper accepts.

    Why: such members lack ``seekable()``; streaming avoids bzip2's random access cost.
    """

    def __init__(self, member: Any):
        self._member = member

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._member.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _archive_encoding(meta: bytes) -> str:
    encoding = json.loads(meta.decode("utf-8")).get("encoding", "UTF-8")
    return {"UTF-8": "utf-8-sig", "ISO-8859-1": "latin-1"}.get(encoding.upper(), encoding)


def _cre_rows(archive: Path) -> Iterator[list[str]]:
    """The CRE records of a vacation archive, in member order, streamed (memory stays flat)."""
    encoding = "utf-8-sig"
    with tarfile.open(archive, "r|bz2") as tar:
        for info in tar:
            if not info.isfile():
                continue
            handle = tar.extractfile(info)
            if handle is None:
                continue
            if info.name.rsplit("/", 1)[-1] == "META.json":
                encoding = _archive_encoding(handle.read())
                continue
            if not _CRE_MEMBER.match(info.name):
                continue
            text = io.TextIOWrapper(io.BufferedReader(_Unseekable(handle), 1 << 20),
                                    encoding=encoding, newline="")
            reader = csv.reader(text, delimiter=";", quotechar='"')
            header = [name.lstrip("\ufeff") for name in next(reader, [])]
            if tuple(header) != CRE_COLUMNS:
                raise ValueError(f"{archive.name}:{info.name}: unexpected header {header}")
            width = len(CRE_COLUMNS)
            for number, row in enumerate(reader, start=2):
                if len(row) != width:
                    raise ValueError(f"{archive.name}:{info.name}: record {number} has "
                                     f"{len(row)} fields, not {width}")
                yield row


def vacation_id_of(archive: Path) -> str:
    """``BAF_20261122_01`` from ``.../BAF_20261122_01.tar.bz2``."""
    match = _ARCHIVE.match(archive.name)
    if not match:
        raise ValueError(f"{archive.name} is not named BAF_<YYYYMMDD>_<NN>.tar.bz2")
    return match.group(1)


def prepare_tool_csvs(archive: Path, out_dir: Path, vacation_id: str) -> dict[str, Path]:
    """Writes one CSV per target table (exactly its columns) from the archive's CRE members.

    Why a CSV per table: both tools map CSV columns to table columns one to one, and neither can
    derive ``month`` or add the constant ``vacation_id`` itself. Streams: memory stays flat.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {table: out_dir / f"{table}.csv" for table in TABLES}
    temporary = {table: path.with_suffix(".csv.tmp") for table, path in paths.items()}
    handles = {table: open(path, "w", encoding="utf-8", newline="")
               for table, path in temporary.items()}
    try:
        events = csv.writer(handles["cre_events_by_account"], lineterminator="\n")
        versions = csv.writer(handles["cre_event_versions"], lineterminator="\n")
        events.writerow(TABLES["cre_events_by_account"])
        versions.writerow(TABLES["cre_event_versions"])
        for (cre_id, account_id, event_type, event_ts, value_date, amount, currency, iban,
             label) in _cre_rows(archive):
            month = f"{value_date[0:4]}{value_date[5:7]}" if value_date else ""
            events.writerow((account_id, month, value_date, cre_id, vacation_id, event_type,
                          event_ts, amount, currency, iban, label))
            versions.writerow((cre_id, vacation_id, account_id, value_date, currency))
    finally:
        for handle in handles.values():
            handle.close()
    for table, path in paths.items():
        os.replace(temporary[table], path)
    return paths


# ---------------------------------------------------------------------------------------------
# Cassandra side (not timed)


def connect(host: str, port: int, user: str, password: str,
            consistency: Optional[str] = None) -> Any:
    """A cassandra-driver session (the driver comes with cqlsh) for DDL, counts and samples;
    ``consistency`` (a level's name) for its statements, by default the driver's (LOCAL_ONE)."""
    from cassandra import ConsistencyLevel
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile

    profile = ExecutionProfile(request_timeout=120)
    if consistency:
        profile.consistency_level = ConsistencyLevel.name_to_value[consistency.upper()]
    cluster = Cluster([host], port=port, protocol_version=5,
                      auth_provider=PlainTextAuthProvider(user, password),
                      execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    return cluster.connect()


SINGLE_NODE = "{'class': 'SimpleStrategy', 'replication_factor': 1}"


def ensure_tables(session: Any, keyspace: str = KEYSPACE,
                  replication: Optional[str] = None) -> None:
    """Creates the keyspace if missing (``replication``, a CQL map; by default SimpleStrategy
    RF 1), and both tables anew.

    Called before each tool's run so that each tool starts from empty tables of today's schema.
    """
    session.execute(f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
                    f"{replication or SINGLE_NODE}")
    session.set_keyspace(keyspace)
    for table in TABLES:
        session.execute(f"DROP TABLE IF EXISTS {table}", timeout=300)
    for statement in _structured_zone_ddl():
        session.execute(statement, timeout=120)


def count_rows(session: Any, keyspace: str, table: str, splits: int = 64) -> int:
    """Rows of a table, by ``count(*)`` over ``splits`` token ranges (each well under a timeout)."""
    token = f"token({', '.join(PARTITION_KEYS[table])})"
    low, high = -(2**63), 2**63 - 1
    step = (high - low) // splits
    bounds = [low + step * index for index in range(splits)] + [high]
    first = session.prepare(f"SELECT count(*) FROM {keyspace}.{table} "
                            f"WHERE {token} >= ? AND {token} <= ?")
    rest = session.prepare(f"SELECT count(*) FROM {keyspace}.{table} "
                           f"WHERE {token} > ? AND {token} <= ?")
    total = 0
    for index in range(splits):
        statement = first if index == 0 else rest
        total += session.execute(statement, (bounds[index], bounds[index + 1]),
                                 timeout=300).one()[0]
    return total


@dataclass
class CsvFacts:
    """A tool CSV's record count and a few sampled records (header names to values)."""

    records: int = 0
    samples: list[dict[str, str]] = field(default_factory=list)


def csv_facts(path: Path) -> CsvFacts:
    """Counts the records of a tool CSV and keeps a few of each tricky kind for the checks."""
    facts = CsvFacts()
    kinds: dict[str, int] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            facts.records += 1
            label = row.get("label")
            wanted = [kind for kind, hit in (
                ("first", facts.records <= _SAMPLES_PER_KIND),
                ("quote", label is not None and '"' in label),
                ("crlf", label is not None and "\r\n" in label),
                ("lf", label is not None and "\n" in label and "\r" not in label),
                ("semicolon", label is not None and ";" in label),
                ("null label", label == ""),
                ("null iban", row.get("counterparty_iban") == ""),
                ("negative", row.get("amount", "").startswith("-")),
                ("+02:00", row.get("event_ts", "").endswith("+02:00")),
            ) if hit and kinds.get(kind, 0) < _SAMPLES_PER_KIND]
            if wanted:
                facts.samples.append(row)
                for kind in wanted:
                    kinds[kind] = kinds.get(kind, 0) + 1
    return facts


def _expected(column: str, text: str) -> Any:
    """The value the driver should read back for a CSV field (empty means null)."""
    if text == "":
        return None
    if column == "month":
        return int(text)
    if column == "amount":
        return Decimal(text)
    if column == "value_date":
        return datetime.date.fromisoformat(text)
    if column == "event_ts":
        moment = datetime.datetime.fromisoformat(text)
        return moment.astimezone(datetime.UTC).replace(tzinfo=None)
    return text


def _read_back(column: str, value: Any) -> Any:
    if value is None:
        return None
    if column == "value_date":
        return value.date()  # cassandra.util.Date
    return value


def check_samples(session: Any, keyspace: str, table: str, samples: Iterable[dict[str, str]],
                  tool: str) -> list[str]:
    """Compares sampled CSV records with the rows read back; returns the differences.
    """
    key = PRIMARY_KEYS[table]
    columns = TABLES[table]
    query = session.prepare(f"SELECT {', '.join(columns)} FROM {keyspace}.{table} WHERE "
                            + " AND ".join(f"{name} = ?" for name in key))
    problems = []
    for sample in samples:
        found = session.execute(query, [_expected(name, sample[name]) for name in key]).one()
        where = ", ".join(f"{name}={sample[name]}" for name in key)
        if found is None:
            problems.append(f"{tool} {table}: no row for {where}")
            continue
        for index, name in enumerate(columns):
            want, got = _expected(name, sample[name]), _read_back(name, found[index])
            if want != got:
                problems.append(f"{tool} {table} {where}: {name} is {got!r}, CSV has {want!r}")
    return problems


def verify_load(tool: str, csvs: dict[str, Path], host: str, port: int, user: str,
                password: str, keyspace: str, consistency: Optional[str] = None) -> None:
    """Raises unless each table has as many rows as its CSV has records and the samples match
    (read at ``consistency``: that of the writes, on a cluster)."""
    session = connect(host, port, user, password, consistency)
    try:
        problems = []
        for table, path in csvs.items():
            facts = csv_facts(path)
            loaded = count_rows(session, keyspace, table)
            if loaded != facts.records:
                problems.append(f"{tool}: {keyspace}.{table} has {loaded:,} rows but "
                                f"{path.name} has {facts.records:,} records")
            problems += check_samples(session, keyspace, table, facts.samples, tool)
        if problems:
            raise RuntimeError("load check failed:\n  " + "\n  ".join(problems))
    finally:
        session.cluster.shutdown()


def _reset(host: str, port: int, user: str, password: str, keyspace: str,
           replication: Optional[str] = None) -> None:
    session = connect(host, port, user, password)
    try:
        ensure_tables(session, keyspace, replication)
    finally:
        session.cluster.shutdown()


# ---------------------------------------------------------------------------------------------
# The tools (timed)


def _run(command: list[str], what: str, env: Optional[dict[str, str]] = None,
         log: Optional[Path] = None) -> str:
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env)
    output = result.stdout.decode("utf-8", "replace")
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(output)
    if result.returncode != 0:
        raise RuntimeError(f"{what} exited with {result.returncode}:\n{output[-3000:]}")
    return output


def _cql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _cql_literal(column: str, text: str) -> str:
    """A CSV field as a CQL literal; a text with a line break as ``blobAsText(0x..)`` because
    cqlsh reads its script in text mode and would turn a ``\\r\\n`` into ``\\n``."""
    if text == "":
        return "null"
    if column in _UNQUOTED:
        return text
    if "\n" in text or "\r" in text:
        return f"blobAsText(0x{text.encode('utf-8').hex()})"
    return _cql_string(text)


def cqlsh_inputs(csvs: dict[str, Path], keyspace: str = KEYSPACE,
                 consistency: Optional[str] = None) -> dict[str, Path]:
    """One cqlsh script per table: a ``COPY FROM`` of the records without a line break, then
    ``UNLOGGED BATCH`` INSERTs of the few with one (not timed); first, with ``consistency``,
    the ``CONSISTENCY`` they are written at (cqlsh's own default is ONE).

    Why: cqlsh COPY FROM feeds its workers *lines* and expects as many rows back as lines sent,
    so one quoted value holding a line break stalls the whole import until CHILDTIMEOUT aborts
    it (0 rows reported). Those records (0.5 % of labels in generated data) therefore go
    through plain CQL in the same cqlsh process, which is what a cqlsh user would have to do.
    """
    scripts = {}
    for table, path in csvs.items():
        folder = path.parent / "cqlsh"
        folder.mkdir(exist_ok=True)
        single = folder / f"{table}.csv"
        script = folder / f"{table}.cql"
        columns = TABLES[table]
        errors = CQLSH_ERRORS / f"{table}.err"
        options = dict(CQLSH_OPTIONS, ERRFILE=str(errors))
        inserts = 0
        with open(path, encoding="utf-8", newline="") as source, \
                open(single, "w", encoding="utf-8", newline="") as target, \
                open(script, "w", encoding="utf-8", newline="\n") as cql:
            if consistency:
                cql.write(f"CONSISTENCY {consistency.upper()};\n")
            cql.write(f"COPY {keyspace}.{table} ({', '.join(columns)}) FROM "
                      f"{_cql_string(str(single.resolve()))} WITH "
                      + " AND ".join(f"{name}={_cql_string(value)}"
                                     for name, value in options.items()) + ";\n")
            reader = csv.reader(source)
            writer = csv.writer(target, lineterminator="\n")
            writer.writerow(next(reader))
            insert = f"INSERT INTO {keyspace}.{table} ({', '.join(columns)}) VALUES ("
            for row in reader:
                if not any("\n" in value or "\r" in value for value in row):
                    writer.writerow(row)
                    continue
                if inserts % CQLSH_INSERTS_PER_BATCH == 0:
                    cql.write(("APPLY BATCH;\n" if inserts else "") + "BEGIN UNLOGGED BATCH\n")
                cql.write(insert + ", ".join(_cql_literal(name, value)
                                             for name, value in zip(columns, row)) + ");\n")
                inserts += 1
            if inserts:
                cql.write("APPLY BATCH;\n")
        scripts[table] = script
    return scripts


def cqlsh_copy(csvs: dict[str, Path], host: str, port: int, user: str, password: str,
               keyspace: str = KEYSPACE, replication: Optional[str] = None,
               consistency: Optional[str] = None) -> float:
    """Loads both tables with cqlsh (see :func:`cqlsh_inputs`); returns the wall-clock seconds.

    Raises if cqlsh fails or reports a failed row, or if the check afterwards (not timed) finds
    a difference with the CSVs. ``replication`` and ``consistency``: on a cluster, the
    keyspace's (a CQL map) and the writes'.
    """
    _reset(host, port, user, password, keyspace, replication)
    CQLSH_ERRORS.mkdir(parents=True, exist_ok=True)
    scripts = cqlsh_inputs(csvs, keyspace, consistency)
    env = dict(os.environ, PYTHONUTF8="1")  # cqlsh opens its files with the locale's encoding
    elapsed = 0.0
    for table, script in scripts.items():
        errors = CQLSH_ERRORS / f"{table}.err"
        errors.unlink(missing_ok=True)
        command = [str(CQLSH), host, str(port), "-u", user, "-p", password,
                   "--request-timeout", "120", "-f", str(script.resolve())]
        started = time.monotonic()
        output = _run(command, f"cqlsh {script.name}", env, CQLSH_ERRORS / f"{table}.log")
        elapsed += time.monotonic() - started
        retries = len(_CQLSH_RETRY.findall(output))
        if _CQLSH_TROUBLE.search(_CQLSH_RETRY.sub("", output)) or errors.exists():
            raise RuntimeError(f"cqlsh {script} reported errors (see {errors}):\n"
                               f"{output[-3000:]}")
        copy = _CQLSH_COPY_TIME.search(output)
        if copy:
            days, hours, minutes, seconds = (float(part or 0) for part in copy.groups())
            inserts = script.read_text(encoding="utf-8").count("\nINSERT INTO ")
            print(f"cqlsh {table}: {time.monotonic() - started:.1f} s, of which COPY FROM "
                  f"{((days * 24 + hours) * 60 + minutes) * 60 + seconds:.1f} s; "
                  f"{inserts:,} records with a line break as INSERTs; {retries} batches "
                  "sent again", file=sys.stderr)
    verify_load("cqlsh", csvs, host, port, user, password, keyspace, consistency)
    return elapsed


def dsbulk_jars() -> Path:
    """DSBulk's jars, fetched once with Maven into ``var/dsbulk-lib`` (a marker ends it)."""
    marker = DSBULK_LIB / ".complete"
    if not marker.exists():
        shutil.rmtree(DSBULK_LIB, ignore_errors=True)
        DSBULK_LIB.mkdir(parents=True)
        # An absolute outputDirectory: a relative one resolves against the pom's folder.
        subprocess.run(["mvn", "-q", "-B", "-f", str(DSBULK_POM), "dependency:copy-dependencies",
                        f"-DoutputDirectory={DSBULK_LIB}"], check=True)
        marker.touch()
    return DSBULK_LIB


def dsbulk_load(csvs: dict[str, Path], host: str, port: int, user: str, password: str,
                keyspace: str = KEYSPACE, replication: Optional[str] = None,
                consistency: Optional[str] = None,
                tuning: Sequence[str] = DSBULK_TUNING) -> float:
    """Loads both CSVs with DSBulk; returns the wall-clock seconds of both loads.

    Raises if DSBulk does not exit 0 (``-maxErrors 0``) or the check afterwards (not timed)
    finds a difference. ``tuning``: settings for speed on top of the format ones.
    ``replication`` and ``consistency``: on a cluster, the keyspace's (a CQL map) and the
    writes' (``-cl``; by default DSBulk's LOCAL_ONE).
    """
    lib = dsbulk_jars()
    _reset(host, port, user, password, keyspace, replication)
    level = ("-cl", consistency.upper()) if consistency else ()
    elapsed = 0.0
    for table, path in csvs.items():
        command = ["java", "-cp", f"{lib}/*", DSBULK_MAIN, "load",
                   "-url", str(path.resolve()), "-k", keyspace, "-t", table,
                   "-h", host, "-port", str(port), "-u", user, "-p", password,
                   "--log.directory", str(DSBULK_LOGS), *DSBULK_OPTIONS, *level, *tuning]
        started = time.monotonic()
        _run(command, f"dsbulk load into {table}", log=DSBULK_LOGS / f"{table}.out")
        elapsed += time.monotonic() - started
    verify_load("dsbulk", csvs, host, port, user, password, keyspace, consistency)
    return elapsed


# ---------------------------------------------------------------------------------------------


def _dsbulk_defaults(csvs: dict[str, Path], host: str, port: int, user: str, password: str,
                     keyspace: str = KEYSPACE) -> float:
    return dsbulk_load(csvs, host, port, user, password, keyspace, tuning=())


TOOLS = {"cqlsh": cqlsh_copy, "dsbulk": dsbulk_load, "dsbulk-defaults": _dsbulk_defaults}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Prepares the CSVs, loads them with each tool in turn and prints seconds and rows/s."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("archive", type=Path, help="a BAF_<YYYYMMDD>_<NN>.tar.bz2 vacation")
    parser.add_argument("--out", type=Path, default=VAR / "bench-tools" / "csv",
                        help="where the tools' CSVs go (default: var/bench-tools/csv)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9042)
    parser.add_argument("--user", default="cassandra")
    parser.add_argument("--password", default="cassandra")
    parser.add_argument("--keyspace", default=KEYSPACE)
    parser.add_argument("--tools", nargs="+", choices=tuple(TOOLS), default=["cqlsh", "dsbulk"],
                        help="dsbulk-defaults: DSBulk without DSBULK_TUNING")
    args = parser.parse_args(argv)

    started = time.monotonic()
    out = args.out / vacation_id_of(args.archive)
    csvs = prepare_tool_csvs(args.archive, out, vacation_id_of(args.archive))
    records = {table: csv_facts(path).records for table, path in csvs.items()}
    total = sum(records.values())
    print(f"prepared {', '.join(f'{t}: {n:,}' for t, n in records.items())} records in "
          f"{time.monotonic() - started:.0f} s (not timed) into {out}", file=sys.stderr)
    results = []
    for name in args.tools:
        seconds = TOOLS[name](csvs, args.host, args.port, args.user, args.password,
                              args.keyspace)
        results.append((name, seconds, os.getloadavg()[0]))
        print(f"{name}: {seconds:.1f} s, row counts and samples checked", file=sys.stderr)
    print(f"{'tool':<16} {'rows (both tables)':>18} {'seconds':>8} {'rows/s':>9} "
          f"{'CRE rows/s':>10} {'load avg 1 min after':>20}")
    cre = records["cre_event_versions"]
    for name, seconds, load in results:
        print(f"{name:<16} {total:>18,} {seconds:>8.1f} {total / seconds:>9,.0f} "
              f"{cre / seconds:>10,.0f} {load:>20.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
