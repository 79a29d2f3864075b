"""Least privilege in the structured zone: the three roles the platform's processes log in as.

- ``cre_ingest``, the Beam jobs (``cre ingest``, ``deliver``, ``replay``, ``rollback``,
  ``recover``): reads and writes the zone's tables, the ledger and the data-quality tables;
- ``cre_service``, ``cre serve``: reads and writes the collection's tables (uploads, tokens,
  the login throttle, the audit trail) and the ledger (it queues uploads, its manager claims
  them), reads the rejected lines, the data-quality findings and the lineage's tables (event
  versions, package positions: its console shows them), and no other data table;
- ``cre_reader``, consumers and ``cre query``/``status``/``rejects``/``quality``: reads the
  zone's tables, the data-quality tables and the ledger, which decides what is visible.

Creating tables (``cre db migrate``), backups, restores and these roles stay with an
administrator. Every table of the keyspace must be in one of the groups below, so a migration
that adds a table cannot leave it reachable by accident or not at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

ZONE = frozenset({"cre_events_by_account", "cre_event_versions", "cre_days_by_vacation",
                  "gesparam_versions", "rejects_by_vacation", "package_positions",
                  "package_positions_by_day"})
LEDGER = frozenset({"vacations", "vacation_history"})
COLLECTION = frozenset({"uploads", "upload_names", "service_tokens", "login_failures",
                        "audit_events"})
SCHEMA = frozenset({"schema_migrations"})  # read by every command: is the keyspace current?
QUALITY = frozenset({"vacation_quality", "accounts_first_seen"})
TABLES = ZONE | LEDGER | COLLECTION | SCHEMA | QUALITY


@dataclasses.dataclass(frozen=True)
class Role:
    name: str
    password_variable: str
    reads: frozenset[str]
    writes: frozenset[str] = frozenset()

    def permissions(self, keyspace: str, tables: frozenset[str]) -> set[tuple[str, str]]:
        """(resource as Cassandra lists it, permission) of every grant this role should hold
        on ``keyspace``, whose tables are ``tables``."""
        return ({(f"<table {keyspace}.{table}>", "SELECT") for table in self.reads & tables} |
                {(f"<table {keyspace}.{table}>", "MODIFY") for table in self.writes & tables})


INGEST = Role("cre_ingest", "CRE_INGEST_PASSWORD", ZONE | LEDGER | SCHEMA | QUALITY,
              ZONE | LEDGER | QUALITY)
ROLES = (
    INGEST,
    Role("cre_service", "CRE_SERVICE_PASSWORD",
         COLLECTION | LEDGER | SCHEMA | QUALITY | {"rejects_by_vacation", "cre_event_versions",
                                                   "package_positions", "package_positions_by_day"},
         COLLECTION | LEDGER),
    Role("cre_reader", "CRE_READER_PASSWORD", ZONE | LEDGER | SCHEMA | QUALITY),
)


def _literal(text: str) -> str:
    """A CQL string literal: role statements take no bind markers."""
    return "'" + text.replace("'", "''") + "'"


def _resource(listed: str) -> str:
    """``<table ks.t>`` as LIST PERMISSIONS shows it, as GRANT and REVOKE name it."""
    kind, _, name = listed.strip("<>").partition(" ")
    return f"{kind.upper()} {name}"


def apply(session, keyspace: str, passwords: Mapping[str, str]) -> list[dict]:
    """Creates or updates the roles (LOGIN, not superuser, the given passwords) and makes their
    permissions on ``keyspace`` exactly ``ROLES`` say: missing grants are given, any other
    grant on the keyspace, its tables or all keyspaces is revoked. Safe to run again; grants
    on other keyspaces are left alone. What each role was granted and revoked."""
    tables = frozenset(name for (name,) in session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,)))
    if unknown := sorted(tables - TABLES):
        raise ValueError(f"tables {', '.join(unknown)} of {keyspace} are in no role's grants: "
                         "add them to pipelines/roles.py")
    ours = ("<all keyspaces>", f"<keyspace {keyspace}>", f"<table {keyspace}.")
    if missing := [role.name for role in ROLES if not passwords.get(role.name)]:
        raise ValueError(f"no password for {', '.join(missing)}")
    changes = []
    for role in ROLES:
        options = (f"PASSWORD = {_literal(passwords[role.name])} AND LOGIN = true "
                   "AND SUPERUSER = false")
        session.execute(f"CREATE ROLE IF NOT EXISTS {role.name} WITH {options}")
        session.execute(f"ALTER ROLE {role.name} WITH {options}")
        listed = session.execute(f"LIST ALL PERMISSIONS OF {role.name} NORECURSIVE")
        held = {(grant["resource"], grant["permission"]) for grant in
                (dict(zip(listed.column_names, row)) for row in listed)
                if grant["resource"].startswith(ours)}
        wanted = role.permissions(keyspace, tables)
        revoked, granted = sorted(held - wanted), sorted(wanted - held)
        for resource, permission in revoked:
            session.execute(f"REVOKE {permission} ON {_resource(resource)} FROM {role.name}")
        for resource, permission in granted:
            session.execute(f"GRANT {permission} ON {_resource(resource)} TO {role.name}")
        changes.append({"role": role.name, "granted": granted, "revoked": revoked,
                        "reads": sorted(role.reads & tables),
                        "writes": sorted(role.writes & tables)})
    return changes
