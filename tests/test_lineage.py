"""``cre lineage``: an event's versions followed back to the lines of their landed archives."""

from __future__ import annotations

import json
import tarfile
from decimal import Decimal

import pytest
from helpers import run_cre
from vacations import data_records

from pipelines.local.generator import generate_vacation, read_members

pytestmark = pytest.mark.integration


def _lineage(structured, cre_id: str) -> tuple[int, dict]:
    run = run_cre("lineage", "--cre-id", cre_id, "--json", env=structured)
    assert run.code in (0, 3), run.stderr[-2000:]
    return run.code, json.loads(run.stdout.strip().splitlines()[-1])


def _line(landed_path: str, member_name: str, line_number: int) -> str:
    """The line of a member of a landed archive, read independently of the product."""
    with tarfile.open(landed_path, "r:bz2") as archive:
        member = next(info for info in archive.getmembers()
                      if info.name.rsplit("/", 1)[-1] == member_name)
        text = archive.extractfile(member).read().decode("utf-8")
    return text.splitlines()[line_number - 1]


def test_a_corrected_event_is_followed_to_its_lines_then_rolled_back(structured, tmp_path):
    first = generate_vacation(tmp_path / "a", "2026-10-05", 1, 300, 5, seed=41)
    rows = [row for name, raw in read_members(first).items() if name.startswith("CRE_")
            for row in data_records(raw)]
    original = rows[7]
    corrected = [*original[:5], "99.99", *original[6:]]
    second = generate_vacation(tmp_path / "b", "2026-10-05", 2, 10, 0, seed=42,
                               corrections=[corrected])
    for archive in (first, second):
        run = run_cre("ingest", "--input", str(archive), "--zones-root", str(tmp_path / "zones"),
                      "--no-deliver", env=structured)
        assert run.code == 0, run.stderr[-3000:]

    code, answer = _lineage(structured, original[0])
    assert code == 0
    versions = answer["versions"]
    assert [v["vacation_id"] for v in versions] == ["BAF_20261005_02", "BAF_20261005_01"]
    for version, fields in zip(versions, (corrected, original)):
        assert version["state"] == "LOADED" and not version["rolled_back"]
        assert _line(version["landed_path"], version["member_name"],
                     version["line_number"]).split(";") == fields

    assert run_cre("rollback", "BAF_20261005_02", env=structured).code == 0
    code, answer = _lineage(structured, original[0])
    assert [v["vacation_id"] for v in answer["versions"]] == ["BAF_20261005_01"]
    assert _lineage(structured, "NO-SUCH-EVENT")[0] == 3


_DEBITS = {"DEBIT", "TRANSFER_OUT", "FEE"}


def _account_lineage(structured, account_id: str, day: str) -> dict:
    run = run_cre("lineage", "--account", account_id, "--date", day, "--json", env=structured)
    assert run.code == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def _check_against_archives(answer: dict) -> dict[str, list[tuple[str, str, str]]]:
    """Each position's events read back from the landed archives' lines (none rolled back),
    its figures recomputed from those lines; (cre_id, vacation, state) by package."""
    seen = {}
    for position in answer["positions"]:
        debit = credit = Decimal(0)
        for event in position["events"]:
            assert not event["rolled_back"], event
            fields = _line(event["landed_path"], event["member_name"],
                           event["line_number"]).split(";")
            assert (fields[0], fields[1], fields[4], fields[6]) == (
                event["cre_id"], position["account_id"], position["value_date"],
                position["currency"])
            if fields[2] in _DEBITS:
                debit += abs(Decimal(fields[5]))
            else:
                credit += abs(Decimal(fields[5]))
        assert position["figures"] == {
            "event_count": str(len(position["events"])), "debit_total": f"{debit:.2f}",
            "credit_total": f"{credit:.2f}", "net_amount": f"{credit - debit:.2f}"}
        seen.setdefault(position["package"], []).extend(
            (event["cre_id"], event["vacation_id"]) for event in position["events"])
    return seen


def test_a_position_is_followed_to_its_lines_through_rollback_and_redelivery(
        structured, zone_session, tmp_path):
    zones = str(tmp_path / "zones")
    first = generate_vacation(tmp_path / "a", "2026-10-06", 1, 400, 0, seed=51)
    rows = [row for name, raw in read_members(first).items() if name.startswith("CRE_")
            for row in data_records(raw)]
    original = rows[11]
    account, day = original[1], original[4]
    corrected = [*original[:5], "123.45", *original[6:]]
    added = ["LINEAGE-NEW-1", account, "FEE", original[3], day, "7.10", original[6], "", ""]
    archives = [first,
                generate_vacation(tmp_path / "b", "2026-10-06", 2, 10, 0, seed=52,
                                  corrections=[corrected]),
                generate_vacation(tmp_path / "c", "2026-10-06", 3, 10, 0, seed=53,
                                  corrections=[added])]
    for archive in archives:
        run = run_cre("ingest", "--input", str(archive), "--zones-root", zones, env=structured)
        assert run.code == 0, run.stderr[-3000:]
    p1, p2, p3 = (f"MMG_ABS_20261006_0{slot}.tar.bz2" for slot in (1, 2, 3))
    v1, v2, v3 = (f"BAF_20261006_0{slot}" for slot in (1, 2, 3))
    event = original[0]

    seen = _check_against_archives(_account_lineage(structured, account, "2026-10-06"))
    assert (event, v1) in seen[p1] and seen[p2] == [(event, v2)]
    assert {(event, v2), ("LINEAGE-NEW-1", v3)} <= set(seen[p3]) and (event, v1) not in seen[p3]
    _, by_event = _lineage(structured, event)
    assert [(v["vacation_id"], v["packages"]) for v in by_event["versions"]] == [
        (v2, [p2, p3]), (v1, [p1])]

    assert run_cre("rollback", v2, env=structured).code == 0
    answer = _account_lineage(structured, account, "2026-10-06")
    assert p2 not in {position["package"] for position in answer["positions"]}
    # the package delivered after it still counted the rolled-back version: that is what
    # Arkea holds until the package is delivered again
    counted = [e for position in answer["positions"] if position["package"] == p3
               for e in position["events"] if e["cre_id"] == event]
    assert [(e["vacation_id"], e["rolled_back"]) for e in counted] == [(v2, True)]
    _, by_event = _lineage(structured, event)
    assert [(v["vacation_id"], v["rolled_back"], v["packages"]) for v in by_event["versions"]] \
        == [(v1, False, [p1]), (v2, True, [p3])]

    # a position the package had when delivered before, and no longer has
    for statement in ("INSERT INTO package_positions (package, account_id, value_date, currency, "
                      "part, versions) VALUES (%s, 'GONE0000001', '2026-10-06', 'EUR', 0, "
                      "{'X': %s})",
                      "INSERT INTO package_positions_by_day (package, account_id, value_date, "
                      "currency, part, versions) VALUES (%s, 'GONE0000001', '2026-10-06', "
                      "'EUR', 0, {'X': %s})"):
        zone_session.execute(statement, (p3, v3))
    redelivered = run_cre("deliver", "--vacation", v3, "--zones-root", zones, "--redeliver",
                          env=structured)
    assert redelivered.code == 0, redelivered.stderr[-3000:]
    seen = _check_against_archives(_account_lineage(structured, account, "2026-10-06"))
    assert set(seen) == {p1, p3}
    assert (event, v1) in seen[p3] and ("LINEAGE-NEW-1", v3) in seen[p3]
    _, by_event = _lineage(structured, event)
    assert [(v["vacation_id"], v["packages"]) for v in by_event["versions"]] == [
        (v1, [p1, p3])]
    for table in ("package_positions", "package_positions_by_day"):
        assert not list(zone_session.execute(
            f"SELECT part FROM {table} WHERE account_id = 'GONE0000001' AND "
            "value_date = '2026-10-06' AND package = %s ALLOW FILTERING", (p3,)))

    run = run_cre("lineage", "--package", p3, "--json", env=structured)
    assert run.code == 0, run.stderr[-2000:]
    package = json.loads(run.stdout.strip().splitlines()[-1])
    assert sum(len(p["events"]) for p in package["positions"]) == sum(
        int(p["figures"]["event_count"]) for p in package["positions"])
    assert run_cre("lineage", "--package", p2, env=structured).code == 3
