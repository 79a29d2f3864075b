"""The structured zone end to end: ``cre ingest`` into a real Cassandra, then every query.

Each test uses vacations of its own business date, so they share one keyspace.
"""

from __future__ import annotations

import datetime
import json
import time
from decimal import Decimal

import pytest
from cassandra import ConsistencyLevel, WriteTimeout, WriteType
from helpers import abandon, config_of, free_port, run_cre, start_cre
from vacations import (
    data_records,
    day_positions,
    refresh,
    valid_members,
    with_bad_currency,
    write_archive,
)

from pipelines.ledger import Ledger, LedgerConflict, State
from pipelines.local.cassandra_server import Server
from pipelines.local.generator import generate_vacation, read_members
from pipelines.structured_zone import StructuredZone
from transforms.pivot_package import Delivery

pytestmark = pytest.mark.integration


def _ingest(structured, archive, tmp_path, *extra):
    run = run_cre("ingest", "--input", str(archive), "--zones-root", str(tmp_path / "zones"),
                  "--no-deliver", *extra, env=structured)  # test_deliver.py covers delivery
    assert run.summary is not None, run.stderr[-3000:]
    return run


def _cre_rows(archive) -> list[list[str]]:
    return [row for name, raw in read_members(archive).items() if name.startswith("CRE_")
            for row in data_records(raw)]


def _json(structured, *args):
    run = run_cre(*args, "--json", env=structured)
    assert run.code in (0, 3), run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_every_query_round_trips(structured, zone_session, tmp_path):
    archive = generate_vacation(tmp_path, "2026-10-01", 1, 3000, 40, seed=21)
    run = _ingest(structured, archive, tmp_path)
    assert run.code == 0 and run.summary["status"] == "ACCEPTED"
    rows = _cre_rows(archive)
    account = rows[0][1]
    mine = [row for row in rows if row[1] == account]

    events = _json(structured, "query", "events", "--account", account,
                   "--from", "2025-01-01", "--to", "2027-12-31")
    assert sorted((e["cre_id"], Decimal(e["amount"])) for e in events) == \
        sorted((row[0], Decimal(row[5])) for row in mine)
    assert [e["value_date"] for e in events] == sorted((e["value_date"] for e in events),
                                                       reverse=True)

    day = mine[0][4]
    expected = day_positions(mine, day)
    position = _json(structured, "query", "position", "--account", account, "--date", day)
    assert {p["currency"]: [p["event_count"], Decimal(p["debit_total"]),
                            Decimal(p["credit_total"])] for p in position} == expected
    assert all(Decimal(p["net_amount"]) == Decimal(p["credit_total"]) - Decimal(p["debit_total"])
               for p in position)

    params = [row for name, raw in read_members(archive).items() if name.startswith("GESPARAM")
              for row in data_records(raw)]
    table_code, key, value, _, valid_from, valid_to = params[0]
    found = _json(structured, "query", "param", "--table", table_code, "--key", key,
                  "--on", valid_from)
    assert (found["param_value"], found["valid_from"]) == (value, valid_from)
    before = datetime.date.fromisoformat(valid_from) - datetime.timedelta(days=1)
    assert _json(structured, "query", "param", "--table", table_code, "--key", key,
                 "--on", before.isoformat()) is None

    status = _json(structured, "status", "BAF_20261001_01")
    assert (status["state"], status["outcome"], status["loaded"]) == ("LOADED", "ACCEPTED", 3040)
    assert list(status["state_changed_at"]) == ["LANDED", "VALIDATED", "LOADED"]
    day_view = _json(structured, "status", "--date", "2026-10-01")
    assert day_view["missing_slots"] == [2, 3, 4, 5, 6]

    written = StructuredZone(zone_session).written("BAF_20261001_01")
    assert written == {"cre_event_versions": 3000, "gesparam_versions": 40,
                       "rejects_by_vacation": 0}
    plain = run_cre("query", "events", "--account", account, env=structured)
    assert plain.code == 0 and f"events of {account}" in plain.stdout


def test_rejects_are_queryable(structured, tmp_path):
    members = valid_members(tmp_path, business_date="2026-10-02", slot=1)
    name = with_bad_currency(members)
    archive = write_archive(tmp_path, refresh(members), "BAF_20261002_01")
    run = _ingest(structured, archive, tmp_path)
    assert run.summary["status"] == "ACCEPTED_WITH_REJECTS", run.summary
    found = _json(structured, "rejects", "BAF_20261002_01")
    assert [(r["member_name"], r["record_number"], r["line_number"], r["error_code"])
            for r in found] == [(name, 3, 4, "BAD_CURRENCY")]


def test_correction_is_served_then_rolled_back(structured, zone_session, tmp_path):
    first = generate_vacation(tmp_path / "a", "2026-10-03", 1, 400, 5, seed=31)
    rows = _cre_rows(first)
    moved, changed = rows[0], rows[1]
    other = next(row[1] for row in rows if row[1] not in (moved[1], changed[1]))
    corrected = [[*changed[:5], "12.34", *changed[6:]],
                 [moved[0], other, *moved[2:4], "2026-09-30", *moved[5:]]]
    second = generate_vacation(tmp_path / "b", "2026-10-03", 2, 10, 0, seed=32,
                               corrections=corrected)
    assert _ingest(structured, first, tmp_path).code == 0
    assert _ingest(structured, second, tmp_path).code == 0

    def served(account: str) -> dict[str, tuple[str, str]]:
        events = _json(structured, "query", "events", "--account", account,
                       "--from", "2025-01-01", "--to", "2027-12-31")
        return {e["cre_id"]: (e["amount"], e["vacation_id"]) for e in events}

    assert served(changed[1])[changed[0]] == ("12.34", "BAF_20261003_02")
    assert moved[0] not in served(moved[1])
    assert served(other)[moved[0]][1] == "BAF_20261003_02"

    rollback = run_cre("rollback", "BAF_20261003_02", env=structured)
    assert rollback.code == 0, rollback.stderr
    restored = served(changed[1])[changed[0]]
    assert (Decimal(restored[0]), restored[1]) == (Decimal(changed[5]), "BAF_20261003_01")
    assert served(moved[1])[moved[0]][1] == "BAF_20261003_01"
    assert moved[0] not in served(other)
    assert StructuredZone(zone_session).written("BAF_20261003_02")["cre_event_versions"] == 0
    assert _json(structured, "status", "BAF_20261003_02")["state"] == "ROLLED_BACK"


def test_gesparam_correction_and_rollback(structured, tmp_path):
    members = valid_members(tmp_path / "a", business_date="2026-10-04", slot=1)
    first = write_archive(tmp_path, members, "BAF_20261004_01")
    name = next(n for n in members if n.startswith("GESPARAM_"))
    header = members[name].decode().splitlines()[0]
    table_code, key, value, _, valid_from, _ = data_records(members[name])[0]
    later = valid_members(tmp_path / "b", business_date="2026-10-04", slot=2, seed=2)
    later_name = next(n for n in later if n.startswith("GESPARAM_"))
    later[later_name] = f"{header}\n{table_code};{key};NEW-VALUE;;{valid_from};\n".encode()
    second = write_archive(tmp_path, refresh(later), "BAF_20261004_02")
    assert _ingest(structured, first, tmp_path).code == 0
    assert _ingest(structured, second, tmp_path).code == 0
    args = ("query", "param", "--table", table_code, "--key", key, "--on", valid_from)
    assert _json(structured, *args)["param_value"] == "NEW-VALUE"
    assert run_cre("rollback", "BAF_20261004_02", env=structured).code == 0
    assert _json(structured, *args)["param_value"] == value


def test_rejected_vacation_leaves_no_rows(structured, zone_session, tmp_path):
    members = valid_members(tmp_path, business_date="2026-10-05", slot=1)
    members["MONITOR.csv"] = members["MONITOR.csv"].replace(b";CRE;", b";CRE;9", 1)
    archive = write_archive(tmp_path, refresh(members, monitor=False), "BAF_20261005_01")
    run = _ingest(structured, archive, tmp_path)
    assert run.code == 3 and "RECON_COUNT_MISMATCH" in run.error_codes
    account = data_records(members[next(n for n in members if n.startswith("CRE_"))])[0][1]
    assert not any(e["vacation_id"] == "BAF_20261005_01" for e in _json(
        structured, "query", "events", "--account", account, "--from", "2025-01-01",
        "--to", "2027-12-31"))
    assert StructuredZone(zone_session).written("BAF_20261005_01") == {
        "cre_event_versions": 0, "gesparam_versions": 0, "rejects_by_vacation": 0}
    status = _json(structured, "status", "BAF_20261005_01")
    assert status["state"] == "REJECTED"
    assert status["errors"][0]["code"] == "RECON_COUNT_MISMATCH"
    again = _ingest(structured, archive, tmp_path)
    assert again.summary["status"] == "DUPLICATE"


def test_ledger_claims_are_exclusive(structured, zone_session):
    first, second = Ledger(zone_session), Ledger(zone_session)
    args = ("BAF_20261006_01", datetime.date(2026, 10, 6), 1, "a" * 64,
            datetime.datetime.now(datetime.UTC), "landing/2026-10-06/BAF_20261006_01/a/x")
    assert first.claim(*args).outcome == "claimed"
    with pytest.raises(LedgerConflict, match="is being ingested by run"):
        second.claim(*args)
    with pytest.raises(LedgerConflict):
        second.advance("BAF_20261006_01", State.LANDED, State.VALIDATED)
    abandon(zone_session, "BAF_20261006_01")  # a claim whose lease ran out is taken over
    assert second.claim(*args).outcome == "claimed"
    with pytest.raises(LedgerConflict):
        first.advance("BAF_20261006_01", State.LANDED, State.VALIDATED)
    second.advance("BAF_20261006_01", State.LANDED, State.VALIDATED)
    assert second.get("BAF_20261006_01").run_id == second.run_id


class _LostAnswers:
    """A real session whose first answer to each conditional write is lost after the server
    applied it, as when the coordinator times out on a Paxos round that still completes."""

    def __init__(self, session):
        self._session = session
        self.lost: set[tuple[str, str]] = set()

    def __getattr__(self, name):
        return getattr(self._session, name)

    def execute(self, statement, *args, **kwargs):
        result = self._session.execute(statement, *args, **kwargs)
        prepared = getattr(statement, "prepared_statement", statement)  # a bound one's
        query = getattr(prepared, "query_string", prepared)
        write = (query, repr(args))
        if " IF " in query and write not in self.lost:
            self.lost.add(write)
            raise WriteTimeout("lost answer", consistency=ConsistencyLevel.LOCAL_QUORUM,
                               required_responses=2, received_responses=1, write_type=WriteType.CAS)
        return result


def test_ledger_writes_whose_answer_was_lost_count_once(structured, zone_session):
    ledger = Ledger(_LostAnswers(zone_session))
    vacation_id = "BAF_20261006_02"
    assert ledger.claim(vacation_id, datetime.date(2026, 10, 6), 2, "b" * 64,
                        datetime.datetime.now(datetime.UTC), "landing/x").outcome == "claimed"
    ledger.advance(vacation_id, State.LANDED, State.VALIDATED)
    ledger.advance(vacation_id, State.VALIDATED, State.LOADED)
    ledger.record_delivery(vacation_id, State.LOADED, Delivery(vacation_id, "outbound/p", "", 0))
    assert ledger.transition_any(vacation_id, State.DELIVERED, State.ROLLED_BACK, "test")
    assert len(ledger.session.lost) == 5  # each write's first answer was lost, then retried
    assert [item.state for item in ledger.history(vacation_id)] == [  # newest first
        State.ROLLED_BACK, State.DELIVERED, State.LOADED, State.VALIDATED, State.LANDED]
    with pytest.raises(LedgerConflict):  # a write that did not apply is refused all the same
        ledger.advance(vacation_id, State.LOADED, State.DELIVERED)
    assert len(ledger.session.lost) == 6


def test_bad_credentials_or_no_server_fail_in_one_line(structured, tmp_path):
    archive = generate_vacation(tmp_path, "2026-10-07", 1, 10, 1, seed=41)
    for env, reason in (({"CRE_CASSANDRA_PASSWORD": "wrong"}, "authentication failed"),
                        ({"CRE_CASSANDRA_HOSTS": f"127.0.0.1:{free_port()}"}, "no host answered")):
        for args in (("ingest", "--input", str(archive), "--zones-root", str(tmp_path / "z")),
                     ("status", "BAF_20261007_01")):
            run = run_cre(*args, env={**structured, **env})
            assert run.code == 1, run.stderr
            assert "Traceback" not in run.stderr
            assert reason in run.stderr.strip().splitlines()[-1]


def _scan(session, table: str, key: str) -> tuple[int, int]:
    """Rows and distinct keys of a whole table, page by page."""
    keys = [row[0] for row in session.execute(f"SELECT {key} FROM {table}", timeout=120)]
    return len(keys), len(set(keys))


def test_cassandra_stopped_mid_load_then_rerun(tmp_path):
    server = Server(tmp_path / "cassandra", free_port(), free_port())
    server.start()
    env = {"CRE_CASSANDRA_HOSTS": f"127.0.0.1:{server.native_port}",
           "CRE_CASSANDRA_USERNAME": "cassandra", "CRE_CASSANDRA_PASSWORD": "cassandra",
           "CRE_CASSANDRA_KEYSPACE": "midload", "CRE_CASSANDRA_CONSISTENCY": "ONE"}
    try:
        assert run_cre("db", "migrate", env=env).code == 0
        archive = generate_vacation(tmp_path, "2026-10-08", 1, 60_000, 10, seed=51)
        zones = str(tmp_path / "zones")
        load = start_cre("ingest", "--input", str(archive), "--zones-root", zones,
                         "--no-deliver", env=env)
        session = config_of(env).connect("midload")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and load.poll() is None:
            if session.execute("SELECT cre_id FROM cre_event_versions LIMIT 1").one():
                break
            time.sleep(0.2)
        session.cluster.shutdown()
        server.kill()
        _, stderr = load.communicate(timeout=300)
        assert load.returncode == 1, stderr[-3000:]
        assert "error:" in stderr.strip().splitlines()[-1]

        server.start()
        rerun = run_cre("ingest", "--input", str(archive), "--zones-root", zones,
                        "--no-deliver", env=env)
        assert rerun.code == 0, rerun.stderr[-3000:]
        assert rerun.summary["totals"]["loaded"] == 60_010
        session = config_of(env).connect("midload")
        assert _scan(session, "cre_event_versions", "cre_id") == (60_000, 60_000)
        assert _scan(session, "cre_events_by_account", "cre_id") == (60_000, 60_000)
        history = Ledger(session).history("BAF_20261008_01")
        transitions = [item.state for item in history if not item.message.startswith("quality:")]
        assert transitions[:3] == ["LOADED", "VALIDATED", "LANDED"]
        session.cluster.shutdown()
    finally:
        server.stop()
