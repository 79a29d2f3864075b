"""The structured zone's schema: versioned CQL migrations, each applied once, in order.

A migration is ``schemas/cql/<NNN>_<name>.cql``. Applied ones are recorded with their checksum
in ``schema_migrations``; an applied file that changed is an error, never silently re-run.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from io_connectors.cassandra_client import (
    CassandraConfig,
    CassandraUnavailable,
    retry_transient,
    transient,
)
from transforms.contract import PlatformError

_LOG = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parents[1] / "schemas" / "cql"
_FILE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.cql$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,47}$")
# a keyspace's replication when nothing says otherwise (`cre db migrate`, a restore of a backup
# that records none)
DEFAULT_REPLICATION = "SimpleStrategy:1"


def replication(spec: str) -> dict[str, str | int]:
    """``SimpleStrategy:1`` or ``NetworkTopologyStrategy:dc1=3,dc2=3`` as CQL replication."""
    strategy, _, factors = spec.partition(":")
    if strategy == "SimpleStrategy" and factors.isdigit():
        return {"class": strategy, "replication_factor": int(factors)}
    if strategy == "NetworkTopologyStrategy" and factors:
        pairs = [pair.partition("=") for pair in factors.split(",")]
        if all(dc and factor.isdigit() for dc, _, factor in pairs):
            return {"class": strategy, **{dc: int(factor) for dc, _, factor in pairs}}
    raise ValueError(f"replication {spec!r} is neither SimpleStrategy:<rf> nor "
                     "NetworkTopologyStrategy:<dc>=<rf>[,<dc>=<rf>...]")


# where a restore's replication came from: what its report says
REPLICATION_FROM = {"given": "given", "backup": "the backup's",
                    "default": "the default: the backup records none"}


def chosen_replication(asked: Optional[str], recorded: Optional[str]) -> tuple[str, str]:
    """The replication a restore creates its keyspace with, and where it comes from
    (``REPLICATION_FROM``): the one ``asked`` for, else the one the backup ``recorded``, else
    ``DEFAULT_REPLICATION`` (a backup made before it was recorded); ``ValueError`` when not a
    spec."""
    spec, source = ((asked, "given") if asked else (recorded, "backup") if recorded
                    else (DEFAULT_REPLICATION, "default"))
    replication(spec)
    return spec, source


def replication_spec(options: Mapping[str, Any]) -> str:
    """A keyspace's replication map (``system_schema.keyspaces``: the class in full, the
    factors as text) as the spec ``replication`` reads; ``ValueError`` when no spec says it
    (another strategy, a transient factor ``3/1``)."""
    strategy = str(options.get("class", "")).rpartition(".")[2]
    factors = {key: str(value) for key, value in options.items() if key != "class"}
    if strategy == "SimpleStrategy" and set(factors) == {"replication_factor"}:
        spec = f"{strategy}:{factors['replication_factor']}"
    else:
        spec = f"{strategy}:" + ",".join(f"{dc}={factor}" for dc, factor in sorted(factors.items()))
    try:
        replication(spec)
    except ValueError:
        raise ValueError(f"replication {dict(options)} has no spec") from None
    return spec


def same_replication(spec: str, options: Mapping[str, Any]) -> bool:
    """Whether a keyspace's replication map is the one ``spec`` asks for."""
    try:
        return replication(replication_spec(options)) == replication(spec)
    except ValueError:
        return False


def replication_problem(spec: str, nodes: Mapping[Optional[str], int]) -> Optional[str]:
    """Why a cluster of ``nodes`` (per data centre) cannot hold ``spec``'s replicas, or None: a
    data centre it names that the cluster lacks, more replicas than nodes."""
    options = replication(spec)
    if options["class"] == "SimpleStrategy":
        wanted = {"the cluster": (options["replication_factor"], sum(nodes.values()))}
    else:
        unknown = sorted(set(options) - {"class"} - set(nodes))
        if unknown:
            return (f"the cluster has no data centre {', '.join(unknown)} (it has "
                    f"{', '.join(sorted(str(dc) for dc in nodes)) or 'no node'})")
        wanted = {f"data centre {dc}": (factor, nodes[dc])
                  for dc, factor in options.items() if dc != "class"}
    short = [f"{factor} replicas in {where}, which has {count} node{'s' * (count != 1)}"
             for where, (factor, count) in wanted.items() if factor > count]
    return "; ".join(short) or None


def keyspace_replication(session, keyspace: str) -> Optional[dict[str, str]]:
    """The keyspace's replication map, None when there is no such keyspace."""
    row = session.execute("SELECT replication FROM system_schema.keyspaces "
                          "WHERE keyspace_name = %s", (keyspace,)).one()
    return dict(row[0]) if row else None


def nodes_per_datacenter(cluster) -> Counter:
    """The driver's count of the cluster's nodes (up or down), per data centre."""
    return Counter(host.datacenter for host in cluster.metadata.all_hosts())


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, text) of every migration file, in version order."""
    found = []
    for path in sorted(MIGRATIONS.glob("*.cql")):
        match = _FILE.match(path.name)
        if not match:
            raise ValueError(f"{path.name} is not <NNN>_<name>.cql")
        found.append((int(match.group(1)), match.group(2), path.read_text(encoding="utf-8")))
    return found


class SchemaOutdated(PlatformError):
    """The keyspace lacks migrations this version needs: ``cre db migrate`` applies them."""


# a statement that does nothing the second time (a read, IF [NOT] EXISTS), sent again on a
# node's timeout or a connection lost: a node that has just died is not yet known down, and
# just after a rolling restart the first statement may meet a defunct connection
_IF_EXISTS = re.compile(r"\bIF (NOT )?EXISTS\b", re.IGNORECASE)


@retry_transient(attempts=5, max_wait=10)
def _idempotent(session, statement: str, **options) -> list[tuple]:
    return list(session.execute(statement, **options))


def require_current(session) -> None:
    """Refuses a keyspace whose schema is older than this code, before any statement fails on
    a missing table or column."""
    keyspace = session.keyspace
    try:
        applied = {version for (version,) in
                   _idempotent(session, "SELECT version FROM schema_migrations")}
    except Exception as error:  # noqa: BLE001 - sorted below
        if transient(error):  # a timeout still after the retries, not a missing table
            raise CassandraUnavailable(f"cannot read {keyspace}.schema_migrations: "
                                       f"{type(error).__name__}: {error}") from error
        raise SchemaOutdated(f"keyspace {keyspace} was never migrated: run cre db migrate "
                             f"({type(error).__name__})") from error
    missing = [f"{version:03d}_{name}" for version, name, _ in migrations()
               if version not in applied]
    if missing:
        raise SchemaOutdated(f"keyspace {keyspace} lacks the migrations {', '.join(missing)}: "
                             "run cre db migrate")


def statements(text: str) -> list[str]:
    """The statements of a migration: comments dropped, split at each closing ``;``."""
    lines = [line for line in text.splitlines() if not line.strip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]


def migrate(config: CassandraConfig, replication_spec: str) -> list[str]:
    """Creates the keyspace if needed and applies the pending migrations; returns their names."""
    if not _NAME.match(config.keyspace):
        raise ValueError(f"invalid keyspace name {config.keyspace!r}")
    options = replication(replication_spec)
    session = config.connect()
    try:
        rendered = ", ".join(f"'{key}': '{value}'" for key, value in options.items())
        _idempotent(session, f"CREATE KEYSPACE IF NOT EXISTS {config.keyspace} "
                             f"WITH replication = {{{rendered}}}", timeout=120)
        session.set_keyspace(config.keyspace)
        _idempotent(session, "CREATE TABLE IF NOT EXISTS schema_migrations (version int "
                             "PRIMARY KEY, name text, checksum text, applied_at timestamp)",
                    timeout=120)
        applied = dict(_idempotent(session, "SELECT version, checksum FROM schema_migrations",
                                   timeout=120))
        done = []
        for version, name, text in migrations():
            checksum = hashlib.sha256(text.encode()).hexdigest()
            if version in applied:
                if applied[version] != checksum:
                    raise ValueError(f"migration {version:03d}_{name} changed after it was "
                                     "applied; add a new migration instead")
                continue
            for statement in statements(text):
                if _IF_EXISTS.search(statement):
                    _idempotent(session, statement, timeout=120)
                else:  # an ALTER ... ADD sent twice fails: once, with the time it needs
                    session.execute(statement, timeout=120)
            session.execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at) "
                "VALUES (%s, %s, %s, %s)",
                (version, name, checksum, datetime.datetime.now(datetime.UTC)))
            _LOG.info("applied migration %03d_%s to %s", version, name, config.keyspace)
            done.append(f"{version:03d}_{name}")
        return done
    finally:
        session.cluster.shutdown()
