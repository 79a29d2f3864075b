"""Least privilege: ``cre db roles`` against the real server, each role doing its job through
the product's own commands and refused everything else by Cassandra itself."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
from cassandra import Unauthorized
from helpers import Service, add_tenant, config_of, run_cre, wait_until

from pipelines import roles
from pipelines.ledger import Ledger, State
from pipelines.local.generator import generate_vacation
from pipelines.schema_migrations import migrations, statements

PASSWORDS = {role.name: f"{role.name}-{uuid.uuid4().hex}" for role in roles.ROLES}


def test_every_table_of_the_schema_is_granted_to_someone():
    tables = {"schema_migrations"}  # created by cre db migrate itself
    for _, _, text in migrations():
        for statement in statements(text):
            if created := re.match(r"CREATE TABLE IF NOT EXISTS (\w+)", statement):
                tables.add(created.group(1))
            elif dropped := re.match(r"DROP TABLE IF EXISTS (\w+)", statement):
                tables.discard(dropped.group(1))
    assert tables == roles.TABLES
    assert not roles.ZONE & roles.COLLECTION


def test_each_role_writes_only_its_own_tables():
    ingest, service, reader = roles.ROLES
    assert ingest.writes == roles.ZONE | roles.LEDGER | roles.QUALITY
    # the service reads of the zone only what its console shows: the rejected lines, the lineage
    assert service.writes.isdisjoint(roles.ZONE)
    assert service.reads & roles.ZONE == {"rejects_by_vacation", "cre_event_versions",
                                          "package_positions", "package_positions_by_day"}
    assert service.writes.isdisjoint(roles.QUALITY)  # a release runs as an ingest's child
    assert not reader.writes
    assert reader.permissions("ks", frozenset({"vacations", "uploads"})) == {
        ("<table ks.vacations>", "SELECT")}


def _as(structured: dict, role: str) -> dict:
    return {**structured, "CRE_CASSANDRA_USERNAME": role,
            "CRE_CASSANDRA_PASSWORD": PASSWORDS[role]}


def _session(structured: dict, role: str):
    return config_of(_as(structured, role)).connect(structured["CRE_CASSANDRA_KEYSPACE"])


def _refused(session, *statements: str) -> None:
    for statement in statements:
        with pytest.raises(Unauthorized):
            session.execute(statement)


@pytest.fixture(scope="module")
def granted(structured) -> Iterator[list[dict]]:
    applied = run_cre("db", "roles", "--json", env={
        **structured, **{role.password_variable: PASSWORDS[role.name] for role in roles.ROLES}})
    assert applied.code == 0, applied.stderr
    yield json.loads(applied.stdout)
    session = config_of(structured).connect()
    for role in roles.ROLES:  # the roles outlive the keyspace: leave them unusable
        session.execute(f"ALTER ROLE {role.name} WITH LOGIN = false")
    session.cluster.shutdown()


@pytest.mark.integration
def test_ingest_loads_and_delivers_and_nothing_else(structured, granted, tmp_path):
    archive = generate_vacation(tmp_path, "2026-08-01", 1, 200, 3, seed=91)
    ingested = run_cre("ingest", "--input", str(archive), "--zones-root", str(tmp_path / "z"),
                       env=_as(structured, "cre_ingest"))
    assert ingested.code == 0, ingested.stderr
    assert ingested.summary["status"] == "ACCEPTED"
    assert list((tmp_path / "z/outbound").rglob("*.tar.bz2"))  # delivered: the ledger says so
    session = _session(structured, "cre_ingest")
    try:
        _refused(session, "SELECT * FROM audit_events LIMIT 1",
                 "INSERT INTO uploads (tenant, upload_id) VALUES ('t', 'u')",
                 "SELECT * FROM service_tokens LIMIT 1",
                 "CREATE TABLE stolen (k int PRIMARY KEY)", "DROP TABLE vacations")
    finally:
        session.cluster.shutdown()


@pytest.mark.integration
def test_reader_queries_and_writes_nothing(structured, granted, zone_session):
    account, vacation_id = zone_session.execute(
        "SELECT account_id, vacation_id FROM cre_event_versions LIMIT 1").one()
    reader = _as(structured, "cre_reader")
    events = run_cre("query", "events", "--account", account, "--from", "2000-01-01",
                     "--to", "2100-01-01", "--json", env=reader)
    assert events.code == 0, events.stderr
    assert json.loads(events.stdout)
    assert run_cre("status", vacation_id, env=reader).code == 0
    session = _session(structured, "cre_reader")
    try:
        _refused(session, "INSERT INTO cre_events_by_account (account_id, month, value_date, "
                 "cre_id, vacation_id) VALUES ('a', 1, '2026-01-01', 'c', 'v')",
                 "SELECT * FROM audit_events LIMIT 1", "SELECT * FROM uploads LIMIT 1")
        with pytest.raises(Unauthorized):  # the ledger's own rollback write
            Ledger(session).transition_any(vacation_id, State.DELIVERED, State.ROLLED_BACK,
                                           "a reader may not")
    finally:
        session.cluster.shutdown()


@pytest.mark.integration
def test_service_collects_and_audits_and_reads_no_data(structured, granted, tmp_path):
    """cre_service collects, audits and serves its console; of the zone it reads only the
    rejected lines and the lineage's tables."""
    add_tenant(tmp_path / "tenants.json", "arkea")
    added = run_cre("operators", "add", "olivia", "--operators", str(tmp_path / "operators.json"),
                    "--password-stdin", input="operator password 1\n")
    assert added.code == 0, added.stderr
    service_env = _as(structured, "cre_service")
    service = Service(tmp_path, service_env, "--no-manager")
    try:
        archive = generate_vacation(tmp_path / "in", "2026-08-02", 1, 20, 1, seed=92)
        with service.client("arkea") as client:
            assert client.put(f"/v1/uploads/{archive.name}",
                              content=archive.read_bytes()).status_code == 201
            assert client.get("/v1/uploads").json()[0]["status"] == "QUEUED"
        with httpx.Client(base_url=service.url) as browser:
            assert browser.post("/console/login", data={
                "name": "olivia", "password": "operator password 1"}).status_code == 303
            for page in ("/console/days/2026-08-02", "/console/vacations/BAF_20260802_01",
                         "/console/trends", "/console/audit"):
                assert browser.get(page).status_code == 200, page
            for asked in ({"cre_id": "c"}, {"account": "a", "date": "2026-08-02"}):
                lineage = browser.get("/console/lineage", params=asked)  # read, found nothing
                assert lineage.status_code == 404 and 'id="nothing"' in lineage.text, asked
    finally:
        service.kill()
    audited = wait_until(lambda: run_cre("audit", "--tenant", "arkea", "--json",
                                         env=service_env),
                         lambda run: run.code == 0 and len(json.loads(run.stdout)) == 2,
                         timeout=10, interval=0.5)
    assert [event["outcome"] for event in json.loads(audited.stdout)] == ["accepted", "ok"]
    session = _session(structured, "cre_service")
    try:
        _refused(session, "SELECT * FROM cre_events_by_account LIMIT 1",
                 "INSERT INTO cre_event_versions (cre_id, vacation_id) VALUES ('c', 'v')",
                 "DELETE FROM rejects_by_vacation WHERE vacation_id = 'v' AND member_name = 'm'")
        for table in ("rejects_by_vacation", "cre_event_versions", "package_positions",
                      "package_positions_by_day"):
            session.execute(f"SELECT * FROM {table} LIMIT 1")
    finally:
        session.cluster.shutdown()


@pytest.mark.integration
def test_the_service_has_its_ingests_run_as_cre_ingest(structured, granted, tmp_path):
    """cre_service may not write the zone: the manager's ingests connect as cre_ingest."""
    add_tenant(tmp_path / "tenants.json", "arkea")
    service = Service(tmp_path, {**_as(structured, "cre_service"),
                                 "CRE_INGEST_PASSWORD": PASSWORDS["cre_ingest"]},
                      "--ingest-username", "cre_ingest")
    try:
        archive = generate_vacation(tmp_path / "in", "2026-08-03", 1, 20, 1, seed=93)
        with service.client("arkea") as client:
            sent = client.put(f"/v1/uploads/{archive.name}", content=archive.read_bytes())
            assert sent.status_code == 201, sent.text

            def status() -> str:
                return client.get(f"/v1/uploads/{sent.json()['upload_id']}").json()["status"]

            assert wait_until(status, lambda found: found in ("DELIVERED", "FAILED"),
                              timeout=180, interval=1) == "DELIVERED"
    finally:
        service.kill()


@pytest.mark.integration
def test_a_new_run_updates_passwords_and_revokes_extra_grants(structured, granted,
                                                              zone_session):
    keyspace = structured["CRE_CASSANDRA_KEYSPACE"]
    assert all(change["granted"] and not change["revoked"] for change in granted)
    zone_session.execute(f"GRANT MODIFY ON TABLE {keyspace}.audit_events TO cre_reader")
    zone_session.execute(f"GRANT SELECT ON KEYSPACE {keyspace} TO cre_service")
    PASSWORDS["cre_reader"] = f"it's new {uuid.uuid4().hex}"  # a quote, for the CQL literal
    others = {role.password_variable: PASSWORDS[role.name] for role in roles.ROLES
              if role.name != "cre_reader"}
    again = run_cre("db", "roles", "--json", env={**structured, **others},
                    input=PASSWORDS["cre_reader"] + "\n")
    assert again.code == 0, again.stderr
    assert {change["role"]: (change["granted"], change["revoked"])
            for change in json.loads(again.stdout)} == {
        "cre_ingest": ([], []),
        "cre_service": ([], [[f"<keyspace {keyspace}>", "SELECT"]]),
        "cre_reader": ([], [[f"<table {keyspace}.audit_events>", "MODIFY"]])}

    def reader_logs_in() -> bool:  # the server caches credentials for a moment
        try:
            _session(structured, "cre_reader").cluster.shutdown()
        except Exception:  # noqa: BLE001 - CassandraUnavailable until the cache expires
            return False
        return True

    wait_until(reader_logs_in, timeout=10, interval=0.5)
