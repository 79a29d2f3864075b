"""Rollback, replay and recovery, end to end with ``cre`` against a real Cassandra.

Each test uses vacations of its own business date, so they share one keyspace.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import time
from pathlib import Path

import pytest
from cassandra.query import ValueSequence
from helpers import abandon, run_cre, start_cre
from vacations import data_records, refresh, valid_members, with_bad_currency, write_archive

from io_connectors import landing
from pipelines import recovery
from pipelines.ledger import Ledger, State, VacationRecord
from pipelines.local.generator import generate_vacation, read_members
from pipelines.structured_zone import StructuredZone
from transforms import pivot_package
from transforms.structured_rows import DAY_BUCKETS

TABLES = ("cre_event_versions", "cre_events_by_account", "gesparam_versions",
          "rejects_by_vacation")


def _rows(session, vacations: set[str]) -> dict[str, list[tuple]]:
    """Every row the vacations wrote, whole, table by table."""
    found = {}
    for table in TABLES:
        rows = session.execute(f"SELECT * FROM {table}", timeout=120)
        index = rows.column_names.index("vacation_id")
        found[table] = sorted(tuple(row) for row in rows if row[index] in vacations)
    return found


def _positions(zones: Path, business_date: str, vacation_id: str) -> bytes:
    path = zones / "outbound/arkea_abs" / business_date / pivot_package.package_name(vacation_id)
    return pivot_package.read_archive(path.read_bytes())["POSITIONS.csv"]


def _served(structured, account: str) -> dict[str, tuple[str, str]]:
    run = run_cre("query", "events", "--account", account, "--from", "2025-01-01",
                  "--to", "2027-12-31", "--json", env=structured)
    assert run.code == 0, run.stderr
    return {e["cre_id"]: (e["amount"], e["vacation_id"])
            for e in json.loads(run.stdout.strip().splitlines()[-1])}


def test_plan_leaves_live_runs_and_fresh_uploads_alone():
    now = datetime.datetime(2026, 8, 4, 12, tzinfo=datetime.UTC)

    def row(vacation_id: str, state: State, **fields) -> VacationRecord:
        return VacationRecord(**{"vacation_id": vacation_id, "state": state, "received_at": now,
                                 "run_id": "r", "owner": "x:1", "lease_until": now, **fields})

    rows = [row("V1", State.RECEIVED, received_at=now - datetime.timedelta(minutes=1)),
            row("V2", State.RECEIVED, received_at=now - datetime.timedelta(hours=1)),
            row("V3", State.LANDED, owner=f"{socket.gethostname()}:{os.getpid()}",
                lease_until=now + datetime.timedelta(hours=1)),
            row("V4", State.LANDED, lease_until=now - datetime.timedelta(seconds=1)),
            row("V5", State.VALIDATED, owner=f"{socket.gethostname()}:999999999",
                lease_until=now + datetime.timedelta(hours=1)),
            row("V6", State.LOADED), row("V7", State.LOADED, delivered_at=now),
            row("V8", State.REJECTED),
            row("V9", State.LOADED, delivery_held="critical data-quality finding on x")]

    class LedgerRows:
        def in_state(self, state: State) -> list[VacationRecord]:
            return [found for found in rows if found.state == state]

    steps = recovery.plan(LedgerRows(), datetime.timedelta(minutes=10), now)
    assert [(step.vacation_id, step.action) for step in steps] == [
        ("V1", "wait"), ("V2", "replay"), ("V3", "wait"), ("V4", "replay"), ("V5", "replay"),
        ("V6", "deliver"), ("V9", "wait"), ("V8", "deliver")]
    assert steps[-2].reason == "delivery held: critical data-quality finding on x"


@pytest.mark.integration
def test_rollback_then_replay_returns_exactly_the_state_before(structured, zone_session,
                                                               tmp_path):
    first = generate_vacation(tmp_path / "a", "2026-08-01", 1, 600, 20, seed=61)
    rows = [row for name, raw in read_members(first).items() if name.startswith("CRE_")
            for row in data_records(raw)]
    changed = rows[0]
    second = generate_vacation(tmp_path / "b", "2026-08-01", 2, 300, 10, seed=62,
                               corrections=[[*changed[:5], "77.70", *changed[6:]]])
    zones = tmp_path / "zones"
    for archive in (first, second):
        run = run_cre("ingest", "--input", str(archive), "--zones-root", str(zones),
                      env=structured)
        assert run.code == 0, run.stderr[-3000:]
    vacations = {"BAF_20260801_01", "BAF_20260801_02"}
    before = _rows(zone_session, vacations)
    positions = _positions(zones, "2026-08-01", "BAF_20260801_02")
    assert _served(structured, changed[1])[changed[0]] == ("77.70", "BAF_20260801_02")

    rollback = run_cre("rollback", "BAF_20260801_02", env=structured)
    assert rollback.code == 0, rollback.stderr
    assert _served(structured, changed[1])[changed[0]][1] == "BAF_20260801_01"
    rolled_back = _rows(zone_session, vacations)
    assert rolled_back == _rows(zone_session, {"BAF_20260801_01"}) == \
        _rows(zone_session, vacations - {"BAF_20260801_02"})
    assert all(not any("BAF_20260801_02" in row for row in table)
               for table in rolled_back.values())
    assert (zones / "landing/2026-08-01/BAF_20260801_02").is_dir()  # landing copy kept

    refused = run_cre("replay", "BAF_20260801_01", env=structured)
    assert refused.code == 1 and "roll it back first" in refused.stderr

    replay = run_cre("replay", "BAF_20260801_02", env=structured)
    assert replay.code == 0, replay.stderr[-3000:]
    assert replay.summary["status"] == "ACCEPTED"
    assert _rows(zone_session, vacations) == before
    assert _served(structured, changed[1])[changed[0]] == ("77.70", "BAF_20260801_02")
    assert Ledger(zone_session).get("BAF_20260801_02").state == State.DELIVERED
    assert _positions(zones, "2026-08-01", "BAF_20260801_02") == positions
    history = [item.message for item in Ledger(zone_session).history("BAF_20260801_02")]
    assert "rolled back by an operator" in history


@pytest.mark.integration
def test_recover_finishes_a_killed_run_delivers_and_cleans(structured, zone_session, tmp_path):
    zones = tmp_path / "zones"
    killed = generate_vacation(tmp_path, "2026-08-02", 1, 60_000, 10, seed=63)
    load = start_cre("ingest", "--input", str(killed), "--zones-root", str(zones),
                     env=structured)
    deadline = time.monotonic() + 120
    # one row, not a count of them all (seconds at 60,000): the kill comes before the load ends
    first_row = "SELECT cre_id FROM cre_event_versions WHERE vacation_id = %s LIMIT 1"
    while time.monotonic() < deadline and load.poll() is None:
        if zone_session.execute(first_row, ("BAF_20260802_01",)).one():
            break
        time.sleep(0.1)
    load.kill()  # a crash mid-load: the ledger still says LANDED
    load.communicate(timeout=60)
    ledger = Ledger(zone_session)
    assert ledger.get("BAF_20260802_01").state == State.LANDED

    undelivered = generate_vacation(tmp_path, "2026-08-02", 2, 200, 5, seed=64)
    assert run_cre("ingest", "--input", str(undelivered), "--zones-root", str(zones),
                   "--no-deliver", env=structured).code == 0
    lost = generate_vacation(tmp_path, "2026-08-02", 3, 200, 5, seed=65)
    assert run_cre("ingest", "--input", str(lost), "--zones-root", str(zones),
                   "--no-deliver", env=structured).code == 0
    abandon(zone_session, "BAF_20260802_03")
    for path in (zones / "landing/2026-08-02/BAF_20260802_03").rglob("*.tar.bz2"):
        path.unlink()

    dry = run_cre("recover", "--dry-run", "--json", env=structured)
    assert dry.code == 0, dry.stderr
    planned = {step["vacation_id"]: step["action"]
               for step in json.loads(dry.stdout.strip().splitlines()[-1])}
    assert {vacation: planned.get(vacation) for vacation in
            ("BAF_20260802_01", "BAF_20260802_02", "BAF_20260802_03")} == {
        "BAF_20260802_01": "replay", "BAF_20260802_02": "deliver",
        "BAF_20260802_03": "replay"}
    assert ledger.get("BAF_20260802_01").state == State.LANDED  # a dry run does nothing

    recover = run_cre("recover", "--json", env=structured)
    assert recover.code == 0, recover.stderr[-3000:]
    done = {step["vacation_id"]: step for step in
            json.loads(recover.stdout.strip().splitlines()[-1])}
    assert done["BAF_20260802_01"]["result"].startswith("ACCEPTED: 60010 loaded")
    assert done["BAF_20260802_03"]["action"] == "clean"
    states = {vacation: ledger.get(vacation).state for vacation in done
              if vacation.startswith("BAF_20260802")}
    assert states == {"BAF_20260802_01": State.DELIVERED, "BAF_20260802_02": State.DELIVERED,
                      "BAF_20260802_03": State.FAILED}
    written = StructuredZone(zone_session).written("BAF_20260802_01")
    assert written["cre_event_versions"] == 60_000
    assert StructuredZone(zone_session).written("BAF_20260802_03")["cre_event_versions"] == 0
    again = run_cre("recover", "--json", env=structured)
    assert not [step for step in json.loads(again.stdout.strip().splitlines()[-1])
                if step["vacation_id"].startswith("BAF_20260802")]


@pytest.mark.integration
def test_a_replay_after_rolling_back_more_rows_than_a_read_may_meet_tombstones(
        structured, zone_session, tmp_path):
    """A rollback leaves a tombstone for each row, which the vacation_id index still finds:
    a replay looking for rows left would read 101,000 of them, past Cassandra's
    tombstone_failure_threshold (100,000), and fail. The rollback noted its rows deleted, so
    the replay does not look."""
    records = 101_000
    archive = generate_vacation(tmp_path, "2026-08-04", 1, records, 10, seed=64)
    zones = tmp_path / "zones"
    ingested = run_cre("ingest", "--input", str(archive), "--zones-root", str(zones),
                       "--no-deliver", env=structured)
    assert ingested.code == 0, ingested.stderr[-3000:]
    rollback = run_cre("rollback", "BAF_20260804_01", env=structured)
    assert rollback.code == 0, rollback.stderr[-3000:]
    history = [item.message for item in Ledger(zone_session).history("BAF_20260804_01")]
    assert f"rollback finished: deleted {{'cre': {records}, 'gesparam': 10, 'rejects': 0, " \
        "'package_positions': 0}" in history

    replay = run_cre("replay", "BAF_20260804_01", env=structured)
    assert replay.code == 0, replay.stderr[-3000:]
    assert replay.summary["status"] == "ACCEPTED"
    assert replay.summary["totals"] == {"records": records + 10, "loaded": records + 10,
                                        "rejected": 0}
    assert Ledger(zone_session).get("BAF_20260804_01").state == State.DELIVERED
    rows = [row for name, raw in read_members(archive).items() if name.startswith("CRE_")
            for row in data_records(raw)]
    mine = {row[0] for row in rows if row[1] == rows[0][1]}  # an account's events
    assert {cre_id: vacation for cre_id, (_, vacation) in _served(structured, rows[0][1]).items()
            if cre_id in mine} == dict.fromkeys(mine, "BAF_20260804_01")


@pytest.mark.integration
def test_a_load_past_the_reject_ratio_is_rolled_back_automatically(structured, zone_session,
                                                                   tmp_path):
    """What the load wrote (49 events, 10 parameters) is deleted, its rejects stay listed."""
    members = valid_members(tmp_path, business_date="2026-08-03", slot=1)
    bad = with_bad_currency(members)
    archive = write_archive(tmp_path, refresh(members), "BAF_20260803_01")
    run = run_cre("ingest", "--input", str(archive), "--zones-root", str(tmp_path / "zones"),
                  "--max-reject-ratio", "0", "--no-deliver", env=structured)
    assert run.code == 3 and run.summary["status"] == "REJECTED", run.stderr[-3000:]
    ledger = Ledger(zone_session)
    assert ledger.get("BAF_20260803_01").state == State.REJECTED
    assert "BAF_20260803_01" not in ledger.visible()
    assert [item.message for item in ledger.history("BAF_20260803_01")
            if item.message.startswith("rolled back")] == [
        "rolled back automatically: deleted {'cre': 49, 'gesparam': 10, 'rejects': 0}"]
    assert {table: len(rows) for table, rows in _rows(
        zone_session, {"BAF_20260803_01"}).items()} == {
        "cre_event_versions": 0, "cre_events_by_account": 0, "gesparam_versions": 0,
        "rejects_by_vacation": 1}
    assert not zone_session.execute(
        "SELECT account_id FROM cre_days_by_vacation WHERE vacation_id = %s AND bucket IN %s",
        ("BAF_20260803_01", ValueSequence(range(DAY_BUCKETS)))).all()
    rejects = run_cre("rejects", "BAF_20260803_01", "--json", env=structured)
    assert rejects.code == 0, rejects.stderr
    assert [(r["member_name"], r["record_number"], r["error_code"])
            for r in json.loads(rejects.stdout)] == [(bad, 3, "BAD_CURRENCY")]


@pytest.mark.integration
def test_a_landed_archive_changed_on_disk_is_refused_by_its_sha256(structured, zone_session,
                                                                 tmp_path):
    """An upload lands and waits as RECEIVED; its file is then changed on disk. Its ingest
    refuses it (exit 1) before claiming anything, nothing is published, and the refusal is in
    the vacation's history, where the ledger leaves it RECEIVED for an operator."""
    zones = tmp_path / "zones"
    archive = generate_vacation(tmp_path, "2026-08-05", 1, 200, 5, seed=66)
    landed = landing.land(str(archive), str(zones), "2026-08-05", "BAF_20260805_01")
    ledger = Ledger(zone_session)
    ledger.receive("BAF_20260805_01", datetime.date(2026, 8, 5), 1, landed.sha256,
                   datetime.datetime.now(datetime.UTC), landed.path, "arkea")
    with open(landed.path, "ab") as changed:
        changed.write(b"\0")
    run = run_cre("ingest", "--input", landed.path, "--zones-root", str(zones), env=structured)
    assert run.code == 1, run.stderr
    assert "no longer hashes to the sha256 it landed under" in run.stderr
    assert ledger.get("BAF_20260805_01").state == State.RECEIVED
    assert any(entry.message.startswith("refused:") and "sha256" in entry.message
               for entry in ledger.history("BAF_20260805_01"))
    assert not list((zones / "proxy_producer").rglob("*BAF_20260805_01*"))
