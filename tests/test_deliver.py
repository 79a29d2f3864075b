"""The outbound flow end to end: ``cre ingest`` delivers, ``cre deliver`` again or not."""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from helpers import BUCKET, run_cre
from vacations import data_records, refresh, valid_members, write_archive

from io_connectors import arkea_abs
from pipelines.local.generator import generate_vacation, read_members
from transforms import pivot_package
from transforms.contract import DEBIT_TYPES

pytestmark = pytest.mark.integration


def _rows(archive: Path) -> list[list[str]]:
    return [row for name, raw in read_members(archive).items() if name.startswith("CRE_")
            for row in data_records(raw)]


def _package(zones: Path, business_date: str, vacation_id: str) -> dict[str, bytes]:
    path = zones / "outbound/arkea_abs" / business_date / pivot_package.package_name(vacation_id)
    return pivot_package.read_archive(path.read_bytes())


def _expected_positions(*archives: Path, touched_by: Path) -> list[str]:
    """Totals computed here from the source CSVs: a later archive's cre_id replaces an
    earlier one's; only the keys the last vacation's events touch."""
    latest: dict[str, list[str]] = {}
    for archive in archives:
        for row in _rows(archive):
            latest[row[0]] = row
    touched = {(row[1], row[4], row[6]) for row in _rows(touched_by)}
    totals = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
    for row in latest.values():
        key = (row[1], row[4], row[6])
        if key in touched:
            total = totals[key]
            total[0] += 1
            total[1 if row[2] in DEBIT_TYPES else 2] += abs(Decimal(row[5]))
    return [f"{a};{d};{c};{n};{debit:.2f};{credit:.2f};{credit - debit:.2f}"
            for (a, d, c), (n, debit, credit) in sorted(totals.items())]


def test_ingest_delivers_positions_over_the_latest_versions(structured, zone_session, tmp_path):
    zones = tmp_path / "zones"
    first = generate_vacation(tmp_path / "a", "2026-09-01", 1, 2000, 10, seed=61)
    rows = _rows(first)
    neighbour = rows[5]  # an event of the first vacation only, beside a new one of the second
    corrections = [[*rows[0][:5], "77.70", *rows[0][6:]],
                   ["NEW-EVENT-1", neighbour[1], "CREDIT", neighbour[3], neighbour[4], "1.00",
                    neighbour[6], "", ""]]
    second = generate_vacation(tmp_path / "b", "2026-09-01", 2, 300, 5, seed=62,
                               corrections=corrections)
    for archive in (first, second):
        run = run_cre("ingest", "--input", str(archive), "--zones-root", str(zones),
                      env=structured)
        assert run.code == 0, run.stderr[-3000:]

    package = _package(zones, "2026-09-01", "BAF_20260901_02")
    pivot_package.check(package)
    assert list(package) == ["ACK.json", "POSITIONS.csv", "MANIFEST.json"]
    lines = package["POSITIONS.csv"].decode().splitlines()
    assert lines[0] == ";".join(pivot_package.POSITION_COLUMNS)
    assert lines[1:] == _expected_positions(first, second, touched_by=second)
    neighbours = [line for line in lines
                  if line.startswith(f"{neighbour[1]};{neighbour[4]};{neighbour[6]};")]
    assert len(neighbours) == 1 and int(neighbours[0].split(";")[3]) >= 2
    ack = json.loads(package["ACK.json"])
    assert (ack["vacation_id"], ack["status"], ack["errors"]) == (
        "BAF_20260901_02", "ACCEPTED", [])
    status = json.loads(run_cre("status", "BAF_20260901_02", "--json",
                                env=structured).stdout)
    assert status["state"] == "DELIVERED"

    # a vacation loaded before cre_days_by_vacation existed: its days come from its versions
    assert zone_session.execute("SELECT count(*) FROM cre_days_by_vacation WHERE vacation_id "
                                "= 'BAF_20260901_02' AND bucket IN (0, 1, 2, 3, 4, 5, 6, 7, 8, "
                                "9, 10, 11, 12, 13, 14, 15)").one()[0] > 0
    zone_session.execute("DELETE FROM cre_days_by_vacation WHERE vacation_id = "
                         "'BAF_20260901_02' AND bucket IN (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, "
                         "12, 13, 14, 15)")
    path = zones / "outbound/arkea_abs/2026-09-01" / pivot_package.package_name("BAF_20260901_02")
    delivered = path.read_bytes()
    again = run_cre("deliver", "--vacation", "BAF_20260901_02", "--zones-root", str(zones),
                    "--redeliver", env=structured)
    assert again.code == 0, again.stderr[-3000:]
    assert path.read_bytes() == delivered


def _ledger_delivery(session, vacation_id: str) -> tuple:
    """The ledger's word on a delivery: when, and what (path, sha256, bytes)."""
    delivered_at, delivery = session.execute(
        "SELECT delivered_at, delivery FROM vacations WHERE vacation_id = %s",
        (vacation_id,)).one()
    return delivered_at, json.loads(delivery)


def test_deliver_once_unless_redelivered(structured, zone_session, tmp_path):
    zones = tmp_path / "zones"
    members = valid_members(tmp_path, business_date="2026-09-02", slot=1)
    name = next(n for n in members if n.startswith("CRE_"))
    lines = members[name].decode().splitlines(keepends=True)
    fields = lines[2].split(";", 7)
    lines[2] = ";".join([*fields[:4], "2026-02-30", *fields[5:]])
    members[name] = "".join(lines).encode()
    archive = write_archive(tmp_path, refresh(members), "BAF_20260902_01")
    run = run_cre("ingest", "--input", str(archive), "--zones-root", str(zones),
                  "--no-deliver", env=structured)
    assert run.summary["status"] == "ACCEPTED_WITH_REJECTS"
    assert not (zones / "outbound").exists()

    package_path = arkea_abs.package_path(str(zones), "2026-09-02", "BAF_20260902_01")
    partial = arkea_abs.stage(package_path, b"half a package")  # a delivery that died here
    assert not arkea_abs.delivered(package_path)
    args = ("deliver", "--vacation", "BAF_20260902_01", "--zones-root", str(zones), "--json")
    first = json.loads(run_cre(*args, env=structured).stdout.strip().splitlines()[-1])
    package_file = Path(first["path"])
    assert first["path"] == package_path and not Path(partial).exists()
    before, written = package_file.read_bytes(), package_file.stat()
    delivered_at, delivery = _ledger_delivery(zone_session, "BAF_20260902_01")
    assert delivery == {key: first[key] for key in ("vacation_id", "path", "sha256", "bytes")}
    again = json.loads(run_cre(*args, env=structured).stdout.strip().splitlines()[-1])
    assert (first["delivered"], again["delivered"]) == (True, False)
    assert again["sha256"] == first["sha256"]
    assert [p.name for p in package_file.parent.iterdir()] == [package_file.name]
    assert package_file.stat().st_ino == written.st_ino  # not written again
    assert _ledger_delivery(zone_session, "BAF_20260902_01") == (delivered_at, delivery)
    forced = json.loads(run_cre(*args, "--redeliver", env=structured).stdout.splitlines()[-1])
    # written again (staged under another name, renamed over the old file: another inode), the
    # same bytes (spec 4), and the ledger's delivery moved
    assert forced["delivered"] and package_file.stat().st_ino != written.st_ino
    assert package_file.read_bytes() == before
    assert [p.name for p in package_file.parent.iterdir()] == [package_file.name]
    redelivered_at, redelivery = _ledger_delivery(zone_session, "BAF_20260902_01")
    assert redelivered_at > delivered_at and redelivery == delivery
    package = pivot_package.read_archive(before)
    assert package["REJECTS.csv"].decode().splitlines()[1].startswith(f"{name};2;3;BAD_DATE;")


def test_rejected_vacation_gets_its_package(structured, tmp_path):
    zones = tmp_path / "zones"
    members = valid_members(tmp_path, business_date="2026-09-03", slot=1)
    members["MONITOR.csv"] = members["MONITOR.csv"].replace(b";CRE;", b";CRE;9", 1)
    archive = write_archive(tmp_path, refresh(members, monitor=False), "BAF_20260903_01")
    run = run_cre("ingest", "--input", str(archive), "--zones-root", str(zones),
                  env=structured)
    assert run.code == 3
    package = _package(zones, "2026-09-03", "BAF_20260903_01")
    assert list(package) == ["ACK.json", "MANIFEST.json"]
    ack = json.loads(package["ACK.json"])
    assert ack["status"] == "REJECTED" and ack["errors"][0]["code"] == "RECON_COUNT_MISMATCH"

    (tmp_path / "corrected").mkdir()
    corrected = write_archive(tmp_path / "corrected", refresh(members), "BAF_20260903_01")
    run = run_cre("ingest", "--input", str(corrected), "--zones-root", str(zones),
                  env=structured)
    assert run.code == 0, run.stderr[-3000:]
    package = _package(zones, "2026-09-03", "BAF_20260903_01")
    assert json.loads(package["ACK.json"])["status"] == "ACCEPTED"
    assert "POSITIONS.csv" in package
    status = json.loads(run_cre("status", "BAF_20260903_01", "--json", env=structured).stdout)
    assert status["state"] == "DELIVERED"


def test_deliver_to_gcs(structured, gcs, tmp_path):
    host, bucket = gcs
    zones = tmp_path / "zones"
    archive = generate_vacation(tmp_path, "2026-09-04", 1, 200, 3, seed=63)
    run = run_cre("ingest", "--input", str(archive), "--zones-root", str(zones),
                  "--outbound-root", f"gs://{BUCKET}/abs", "--project", "test", "--no_auth",
                  env={**structured, "STORAGE_EMULATOR_HOST": host})
    assert run.code == 0, run.stderr[-3000:]
    name = "abs/outbound/arkea_abs/2026-09-04/MMG_ABS_20260904_01.tar.bz2"
    assert {blob.name for blob in bucket.list_blobs(prefix="abs/")} == {name, name + ".done"}
    package = pivot_package.read_archive(bucket.blob(name).download_as_bytes())
    pivot_package.check(package)
    assert package["POSITIONS.csv"].decode().splitlines()[1:] == _expected_positions(
        archive, touched_by=archive)
