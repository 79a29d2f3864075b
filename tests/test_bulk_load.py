"""``cre ingest --load-mode bulk`` end to end: the same answers as CQL mode, rollback and replay
over bulk-loaded rows, a dead writer leaving the vacation retryable, and auto's choice.

The rest of the structured zone's suite runs in bulk mode too: ``make test-bulk``.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from helpers import run_cre, sstable_writer_of, start_cre, wait_until
from vacations import data_records, valid_members, write_archive

from io_connectors import sstable_writer
from pipelines.ingest import declared_records, load_mode
from pipelines.ledger import Ledger, State
from pipelines.local.generator import generate_vacation, read_members
from pipelines.options import ingest_options
from pipelines.structured_zone import StructuredZone
from transforms.contract import Limits, VacationName


def _ingest(env, archive, tmp_path, mode: str, *extra: str):
    run = run_cre("ingest", "--input", str(archive), "--zones-root", str(tmp_path / "zones"),
                  "--no-deliver", "--load-mode", mode, *extra, env=env)
    assert run.code == 0 and run.summary is not None, run.stderr[-3000:]
    return run


def _json(env, *args):
    run = run_cre(*args, "--json", env=env)
    assert run.code == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def _answers(env, archive) -> dict:
    """What ``cre query`` serves of the archive: the events and positions of a few accounts,
    a parameter on its first day."""
    rows = [row for name, raw in read_members(archive).items() if name.startswith("CRE_")
            for row in data_records(raw)]
    answers = {}
    for account in sorted({row[1] for row in rows})[:2]:
        answers[account] = _json(env, "query", "events", "--account", account,
                                 "--from", "2025-01-01", "--to", "2027-12-31")
        day = next(row[4] for row in rows if row[1] == account)
        answers[f"{account} {day}"] = _json(env, "query", "position", "--account", account,
                                            "--date", day)
    params = [row for name, raw in read_members(archive).items() if name.startswith("GESPARAM")
              for row in data_records(raw)]
    answers["param"] = _json(env, "query", "param", "--table", params[0][0], "--key",
                             params[0][1], "--on", params[0][4])
    return answers


@pytest.mark.integration
def test_bulk_serves_what_cql_serves_and_rolls_back(structured, zone_session, tmp_path):
    """One vacation loaded by CQL, rolled back, replayed in bulk: the same answers; the bulk
    rows at one write time, found through the SAI index; a rollback removes them."""
    archive = generate_vacation(tmp_path, "2026-09-01", 1, 4000, 30, seed=41)
    vacation = "BAF_20260901_01"
    _ingest(structured, archive, tmp_path, "cql")
    by_cql = _answers(structured, archive)
    assert any(by_cql[key] for key in by_cql if key != "param") and by_cql["param"]
    assert run_cre("rollback", vacation, env=structured).code == 0

    replay = run_cre("replay", vacation, "--load-mode", "bulk", "--no-deliver", env=structured)
    assert replay.code == 0, replay.stderr[-3000:]
    assert "structured zone in bulk mode" in replay.stderr
    assert _answers(structured, archive) == by_cql
    zone = StructuredZone(zone_session)
    assert zone.written(vacation) == {"cre_event_versions": 4000, "gesparam_versions": 30,
                                      "rejects_by_vacation": 0}
    written_at = {when for (when,) in zone_session.execute(
        "SELECT writetime(account_id) FROM cre_event_versions WHERE vacation_id = %s",
        (vacation,))}
    assert len(written_at) == 1  # the run's one write time

    assert run_cre("rollback", vacation, env=structured).code == 0
    assert zone.purge(vacation) == {"cre": 0, "gesparam": 0, "rejects": 0}  # none left
    account = min(key for key in by_cql if key != "param" and " " not in key)
    assert _json(structured, "query", "events", "--account", account,
                 "--from", "2025-01-01", "--to", "2027-12-31") == []


@pytest.mark.integration
def test_a_dead_writer_fails_the_run_and_leaves_the_vacation_retryable(
        structured, zone_session, tmp_path):
    archive = generate_vacation(tmp_path, "2026-09-02", 1, 100_000, 10, seed=42)
    vacation = "BAF_20260902_01"
    ingest = start_cre("ingest", "--input", str(archive), "--zones-root",
                       str(tmp_path / "zones"), "--no-deliver", "--load-mode", "bulk",
                       env=structured)
    pid = wait_until(lambda: sstable_writer_of(ingest), timeout=120, interval=0.2,
                     what="the ingest's SSTable writer")
    time.sleep(2)  # rows on their way
    assert ingest.poll() is None, "the ingest ended before its writer was killed"
    os.kill(pid, signal.SIGKILL)
    _, stderr = ingest.communicate(timeout=300)
    assert ingest.returncode == 1, stderr[-3000:]
    assert "SSTable writer" in stderr
    record = Ledger(zone_session).get(vacation)
    assert record.state == State.FAILED and "SSTable writer" in record.errors[0].message
    assert not record.visible

    retried = run_cre("replay", vacation, "--load-mode", "bulk", "--no-deliver", env=structured)
    assert retried.code == 0, retried.stderr[-3000:]
    assert Ledger(zone_session).get(vacation).state == State.LOADED
    assert StructuredZone(zone_session).written(vacation)["cre_event_versions"] == 100_000


def test_auto_loads_in_bulk_from_the_declared_records(tmp_path, monkeypatch):
    archive = generate_vacation(tmp_path, "2026-09-03", 1, 500, 20, seed=43)
    name = VacationName.parse(archive.name)
    assert declared_records(str(archive), name, Limits()) == 520

    def mode(**given) -> str:
        options = ingest_options({"input": str(archive), "zones_root": str(tmp_path), **given})
        return load_mode(options, str(archive), name)

    assert mode(load_mode="auto", bulk_min_rows=520) == "bulk"
    assert mode(load_mode="auto", bulk_min_rows=521) == "cql"
    assert mode(load_mode="cql", bulk_min_rows=0) == "cql"
    assert mode(load_mode="bulk", bulk_min_rows=10**9) == "bulk"
    monkeypatch.setenv("CRE_SSTABLE_WRITER", str(tmp_path / "nowhere"))
    assert sstable_writer.unavailable_reason().startswith("the SSTable writer is not built")
    assert mode(load_mode="auto", bulk_min_rows=1) == "cql"  # the log says why


def test_auto_without_meta_first_loads_by_cql(tmp_path):
    """META.json after the data: its figures are not known before the archive is read."""
    members = valid_members(tmp_path, business_date="2026-09-04", slot=1)
    meta = members.pop("META.json")
    archive = write_archive(tmp_path, {**members, "META.json": meta}, "BAF_20260904_01")
    assert declared_records(str(archive), VacationName.parse(archive.name), Limits()) is None
