"""``cre ingest`` end to end on generated archives, broken on purpose one rule at a time."""

from __future__ import annotations

import bz2
import gzip
import json
import tarfile
from decimal import Decimal
from pathlib import Path

import fastavro
import pytest

from tests.vacations import (
    VACATION,
    data_records,
    refresh,
    special,
    tar_bytes,
    valid_members,
    write_archive,
)


def _ingest(cre, archive: Path, zones: Path, *extra: str):
    return cre("ingest", "--input", str(archive), "--zones-root", str(zones), *extra)


def _published(zones: Path, vacation: str = VACATION) -> dict[str, list[dict]]:
    record = json.loads((zones / "proxy_producer" / "_vacations" / f"{vacation}.json").read_text())
    out: dict[str, list[dict]] = {}
    for item in record["files"]:
        with open(item["path"], "rb") as handle:
            out.setdefault(item["type"], []).extend(fastavro.reader(handle))
    return out


def test_valid_vacation_is_accepted_and_published_whole(cre, tmp_path):
    archive = write_archive(tmp_path, valid_members(tmp_path, cre_rows=400, gesparam_rows=30))
    run = _ingest(cre, archive, tmp_path / "zones")
    assert run.code == 0, run.stderr
    assert run.summary["status"] == "ACCEPTED"
    assert run.summary["totals"] == {"records": 430, "loaded": 430, "rejected": 0}
    published = _published(tmp_path / "zones")
    assert sorted(published) == ["AUDIT", "CRE", "GESPARAM", "META", "MONITOR", "REJECT"]
    assert len(published["CRE"]) == 400 and len(published["GESPARAM"]) == 30
    assert published["AUDIT"][0]["status"] == "ACCEPTED"
    landed = list((tmp_path / "zones" / "landing").rglob("*.tar.bz2"))
    assert [path.read_bytes() for path in landed] == [archive.read_bytes()]


def test_values_survive_the_trip_to_avro(cre, tmp_path):
    members = valid_members(tmp_path, cre_rows=300)
    archive = write_archive(tmp_path, members)
    assert _ingest(cre, archive, tmp_path / "zones").code == 0
    source = {row[0]: row for name, raw in members.items() if name.startswith("CRE_")
              for row in data_records(raw)}
    for record in _published(tmp_path / "zones")["CRE"]:
        row = source[record["cre_id"]]
        assert record["amount"] == Decimal(row[5])
        assert record["value_date"].isoformat() == row[4]
        assert record["label"] == (row[8] or None)
        assert record["counterparty_iban"] == (row[7] or None)
    assert len(source) == 300


def test_same_archive_again_is_duplicate_and_nothing_is_redone(cre, tmp_path):
    archive = write_archive(tmp_path, valid_members(tmp_path))
    zones = tmp_path / "zones"
    assert _ingest(cre, archive, zones).code == 0
    commit = zones / "proxy_producer" / "_vacations" / f"{VACATION}.json"
    before = commit.read_bytes()
    again = _ingest(cre, archive, zones)
    assert again.code == 0 and again.summary["status"] == "DUPLICATE"
    assert commit.read_bytes() == before


def test_different_content_under_an_accepted_name_is_kept_but_refused(cre, tmp_path):
    zones = tmp_path / "zones"
    first = write_archive(tmp_path, valid_members(tmp_path, seed=1))
    assert _ingest(cre, first, zones).code == 0
    second_dir = tmp_path / "second"
    second_dir.mkdir()
    second = write_archive(second_dir, valid_members(second_dir, seed=2))
    run = _ingest(cre, second, zones)
    assert run.code == 3 and run.error_codes == ["VACATION_ID_REUSED"]
    assert len(list((zones / "landing").rglob("*.tar.bz2"))) == 2


def _mutate_cre(members: dict[str, bytes], line: str) -> dict[str, bytes]:
    members = dict(members)
    members["CRE_0001.csv"] += line.encode("utf-8")
    return refresh(members)


RECORD_CASES = {
    "COLUMN_COUNT": "X-1;ACC00000001;DEBIT\n",
    "REQUIRED_MISSING": ";ACC00000001;DEBIT;2026-11-22T09:15:00+01:00;2026-11-22;1.00;EUR;;\n",
    "BAD_ENUM": "X-2;ACC00000001;GIFT;2026-11-22T09:15:00+01:00;2026-11-22;1.00;EUR;;\n",
    "BAD_DATE": "X-3;ACC00000001;DEBIT;2026-11-22T09:15:00+01:00;2026-02-30;1.00;EUR;;\n",
    "BAD_TIMESTAMP": "X-4;ACC00000001;DEBIT;2026-11-22T09:15:00;2026-11-22;1.00;EUR;;\n",
    "BAD_DECIMAL": "X-5;ACC00000001;DEBIT;2026-11-22T09:15:00+01:00;2026-11-22;1.005;EUR;;\n",
    "BAD_CURRENCY": "X-6;ACC00000001;DEBIT;2026-11-22T09:15:00+01:00;2026-11-22;1.00;EUX;;\n",
    "BAD_IBAN": "X-7;ACC00000001;DEBIT;2026-11-22T09:15:00+01:00;2026-11-22;1.00;EUR;"
                "FR7630006000011234567890188;\n",
    "BAD_FORMAT": "X-8;acc00000001;DEBIT;2026-11-22T09:15:00+01:00;2026-11-22;1.00;EUR;;\n",
    "TOO_LONG": "X-9;ACC00000001;DEBIT;2026-11-22T09:15:00+01:00;2026-11-22;1.00;EUR;;"
                + "é" * 141 + "\n",
    "DUPLICATE_KEY": "X-10;ACC00000001;DEBIT;2026-11-22T09:15:00+01:00;2026-11-22;1.00;EUR;;\n"
                     "X-10;ACC00000001;DEBIT;2026-11-22T09:15:00+01:00;2026-11-22;2.00;EUR;;\n",
}


@pytest.mark.parametrize("code", sorted(RECORD_CASES))
def test_record_errors_go_to_reject_with_their_reason(cre, tmp_path, code):
    members = _mutate_cre(valid_members(tmp_path, cre_rows=100), RECORD_CASES[code])
    run = _ingest(cre, write_archive(tmp_path, members), tmp_path / "zones")
    assert run.code == 0, run.stderr
    assert run.summary["status"] == "ACCEPTED_WITH_REJECTS"
    assert run.summary["reject_codes"] == {code: 1}
    reject = _published(tmp_path / "zones")["REJECT"]
    assert [item["error_code"] for item in reject] == [code]
    records = len(data_records(members["CRE_0001.csv"]))
    assert reject[0]["member_name"] == "CRE_0001.csv"
    assert reject[0]["record_number"] == records
    assert reject[0]["raw"] == RECORD_CASES[code].splitlines()[-1]
    for member in run.summary["members"]:
        assert member["loaded"] + member["rejected"] == member["records"]


def test_bad_encoding_and_gesparam_range_are_record_errors(cre, tmp_path):
    members = valid_members(tmp_path, cre_rows=100, gesparam_rows=40)
    members["CRE_0001.csv"] += (b"X-1;ACC00000001;DEBIT;2026-11-22T09:15:00+01:00;2026-11-22;1.00;"
                                b"EUR;;caf\xe9\n")
    members["GESPARAM_0001.csv"] += b"TAUX;K1;1.5;;2026-11-22;2026-11-01\n"
    run = _ingest(cre, write_archive(tmp_path, refresh(members)), tmp_path / "zones")
    assert run.summary["reject_codes"] == {"BAD_ENCODING": 1, "BAD_RANGE": 1}, run.stderr
    reject = {item["error_code"]: item for item in _published(tmp_path / "zones")["REJECT"]}
    assert reject["BAD_ENCODING"]["raw"].endswith("caf\\xe9")


def test_line_number_is_where_a_multiline_record_starts(cre, tmp_path):
    members = valid_members(tmp_path, cre_rows=20)
    members["CRE_0001.csv"] += (b'X-1;ACC00000001;DEBIT;2026-11-22T09:15:00+01:00;2026-11-22;1.00;'
                                b'EUR;;"deux\nlignes; et ""quotes"""\n'
                                b'X-2;ACC00000001;GIFT;2026-11-22T09:15:00+01:00;2026-11-22;1.00;'
                                b'EUR;;\n')
    members = refresh(members)
    run = _ingest(cre, write_archive(tmp_path, members), tmp_path / "zones")
    physical = members["CRE_0001.csv"].count(b"\n")
    reject = _published(tmp_path / "zones")["REJECT"]
    assert run.summary["reject_codes"] == {"BAD_ENUM": 1}
    assert reject[0]["line_number"] == physical  # the last line of the file
    loaded = {item["cre_id"]: item for item in _published(tmp_path / "zones")["CRE"]}
    assert loaded["X-1"]["label"] == 'deux\nlignes; et "quotes"'


def test_iso_8859_1_members_are_decoded(cre, tmp_path):
    members = valid_members(tmp_path, cre_rows=200, encoding="ISO-8859-1")
    run = _ingest(cre, write_archive(tmp_path, members), tmp_path / "zones")
    assert run.code == 0 and run.summary["status"] == "ACCEPTED", run.stderr
    labels = [item["label"] for item in _published(tmp_path / "zones")["CRE"] if item["label"]]
    assert any(char in label for label in labels for char in "éèç")


def _archive_bytes(members, **options) -> bytes:
    return bz2.compress(tar_bytes(members, **options))


def _fatal_cases():
    def meta_edit(**changes):
        def build(members):
            meta = json.loads(members["META.json"])
            meta.update(changes)
            return {**members, "META.json": json.dumps(meta).encode()}
        return build

    def without_monitor(members):
        members = dict(members)
        del members["MONITOR.csv"]
        return refresh(members, monitor=False)

    def drop_listing(name):
        def build(members):
            members = dict(members)
            raw = members.pop(name)
            members = refresh(members)
            members[name] = raw
            return members
        return build

    def tamper(members):
        members = dict(members)
        members["CRE_0002.csv"] = members["CRE_0002.csv"].replace(b"EUR", b"USD", 1)
        return members

    def header(members):
        members = dict(members)
        members["GESPARAM_0001.csv"] = members["GESPARAM_0001.csv"].replace(b"param_key", b"key", 1)
        return refresh(members)

    def monitor_count(members):
        members = refresh(members)
        members["MONITOR.csv"] = members["MONITOR.csv"].replace(b"CRE_0001.csv;CRE;25",
                                                                b"CRE_0001.csv;CRE;26")
        return refresh(members, monitor=False)

    def monitor_amount(members):
        members = refresh(members)
        lines = members["MONITOR.csv"].decode().splitlines()
        name, kind, count, total = lines[1].split(";")
        lines[1] = f"{name};{kind};{count};{float(total) + 0.01:.2f}"
        members["MONITOR.csv"] = ("\n".join(lines) + "\n").encode()
        return refresh(members, monitor=False)

    def monitor_invalid(members):
        members = refresh(members)
        members["MONITOR.csv"] += b"CRE_0009.csv;CRE;1;1.00\n"
        return refresh(members, monitor=False)

    def ratio(members):
        members = dict(members)
        members["CRE_0001.csv"] += b"".join(
            f"Z-{n};ACC00000001;GIFT;2026-11-22T09:15:00+01:00;2026-11-22;1.00;EUR;;\n".encode()
            for n in range(10))
        return refresh(members)

    return {
        "META_MISSING": lambda m: {k: v for k, v in m.items() if k != "META.json"},
        "META_INVALID": meta_edit(format_version="2.0"),
        "VACATION_ID_MISMATCH": meta_edit(vacation_id="BAF_20261122_04"),
        "MEMBER_MISSING": lambda m: {k: v for k, v in m.items() if k != "CRE_0002.csv"},
        "MEMBER_UNEXPECTED": lambda m: {**m, "CRE_0099.csv": b"cre_id\n"},
        "CHECKSUM_MISMATCH": tamper,
        "MONITOR_MISSING": without_monitor,
        "MONITOR_INVALID": monitor_invalid,
        "HEADER_MISMATCH": header,
        "RECON_COUNT_MISMATCH": monitor_count,
        "RECON_AMOUNT_MISMATCH": monitor_amount,
        "REJECT_RATIO_EXCEEDED": ratio,
        "UNLISTED_MEMBER": drop_listing("GESPARAM_0001.csv"),
    }


_EXPECTED = {"UNLISTED_MEMBER": "MEMBER_UNEXPECTED"}


@pytest.mark.parametrize("case", sorted(_fatal_cases()))
def test_fatal_member_rules_reject_the_whole_vacation(cre, tmp_path, case):
    members = _fatal_cases()[case](valid_members(tmp_path))
    run = _ingest(cre, write_archive(tmp_path, members), tmp_path / "zones")
    assert run.code == 3, run.stderr
    assert run.summary["status"] == "REJECTED"
    assert _EXPECTED.get(case, case) in run.error_codes
    assert set(_published(tmp_path / "zones")) <= {"REJECT", "AUDIT"}


def _bytes_case(tmp_path: Path, name: str) -> tuple[Path, list[str]]:
    members = valid_members(tmp_path)
    tar = tar_bytes(members)
    path = tmp_path / f"{VACATION}.tar.bz2"
    extra: list[str] = []
    if name == "NOT_BZIP2":
        path.write_bytes(gzip.compress(tar))
    elif name == "TRUNCATED":
        whole = bz2.compress(tar)
        path.write_bytes(whole[: len(whole) - 200])
    elif name == "CORRUPT_TAR":
        path.write_bytes(bz2.compress(b"this is not a tar archive" * 100))
    elif name == "BOMB":
        bomb = dict(members)
        bomb["CRE_0001.csv"] = members["CRE_0001.csv"] + b"\n" * (64 << 20)
        path.write_bytes(_archive_bytes(refresh(bomb, monitor=False)))
    elif name == "TOO_MANY_MEMBERS":
        path.write_bytes(_archive_bytes(members))
        extra = ["--max-members", "3"]
    elif name == "TOO_MANY_BYTES":
        path.write_bytes(_archive_bytes(members))
        extra = ["--max-uncompressed-bytes", "5000"]
    else:
        kinds = {"SYMLINK": (tarfile.SYMTYPE, "META.json"),
                 "HARDLINK": (tarfile.LNKTYPE, "META.json"),
                 "FIFO": (tarfile.FIFOTYPE, ""), "DEVICE": (tarfile.CHRTYPE, "")}
        if name in kinds:
            kind, link = kinds[name]
            path.write_bytes(bz2.compress(tar_bytes(members, extra=(special("x", kind, link),))))
        elif name == "ABSOLUTE":
            path.write_bytes(bz2.compress(tar_bytes(members, folder="/")))
        elif name == "DOTDOT":
            path.write_bytes(bz2.compress(tar_bytes(members, folder="../")))
        elif name == "OTHER_FOLDER":
            path.write_bytes(bz2.compress(tar_bytes(members, folder="elsewhere/")))
        elif name == "REPEATED":
            path.write_bytes(bz2.compress(tar_bytes(members, repeat=("CRE_0001.csv",))))
    return path, extra


_BYTES_CASES = {
    "NOT_BZIP2": "NOT_BZIP2", "TRUNCATED": "CORRUPT_ARCHIVE", "CORRUPT_TAR": "CORRUPT_ARCHIVE",
    "BOMB": "LIMIT_EXCEEDED", "TOO_MANY_MEMBERS": "LIMIT_EXCEEDED",
    "TOO_MANY_BYTES": "LIMIT_EXCEEDED", "SYMLINK": "UNSAFE_MEMBER", "HARDLINK": "UNSAFE_MEMBER",
    "FIFO": "UNSAFE_MEMBER", "DEVICE": "UNSAFE_MEMBER", "ABSOLUTE": "UNSAFE_MEMBER",
    "DOTDOT": "UNSAFE_MEMBER", "OTHER_FOLDER": "UNSAFE_MEMBER", "REPEATED": "UNSAFE_MEMBER",
}


@pytest.mark.parametrize("case", sorted(_BYTES_CASES))
def test_archive_rules_reject_the_whole_vacation(cre, tmp_path, case):
    path, extra = _bytes_case(tmp_path, case)
    run = _ingest(cre, path, tmp_path / "zones", *extra)
    assert run.code == 3, run.stderr
    assert run.error_codes == [_BYTES_CASES[case]]
    assert set(_published(tmp_path / "zones")) <= {"REJECT", "AUDIT"}


def test_bad_name_is_rejected_without_landing(cre, tmp_path):
    path = write_archive(tmp_path, valid_members(tmp_path), name="BAF_20261122_07")
    run = _ingest(cre, path, tmp_path / "zones")
    assert run.code == 3 and run.error_codes == ["BAD_NAME"]
    assert not (tmp_path / "zones" / "landing").exists()


def test_members_in_the_vacation_folder_and_multistream_bzip2_are_accepted(cre, tmp_path):
    members = valid_members(tmp_path)
    tar = tar_bytes(members, folder=f"{VACATION}/", fmt=tarfile.USTAR_FORMAT)
    path = tmp_path / f"{VACATION}.tar.bz2"
    path.write_bytes(bz2.compress(tar[:7000]) + bz2.compress(tar[7000:]))
    run = _ingest(cre, path, tmp_path / "zones")
    assert run.code == 0 and run.summary["status"] == "ACCEPTED", run.stderr


def test_meta_after_the_data_is_read_in_a_second_pass(cre, tmp_path):
    members = valid_members(tmp_path)
    meta = members.pop("META.json")
    members["META.json"] = meta
    run = _ingest(cre, write_archive(tmp_path, members), tmp_path / "zones")
    assert run.code == 0 and run.summary["status"] == "ACCEPTED", run.stderr


def test_usage_errors_exit_2(cre, tmp_path):
    run = cre("ingest", "--zones-root", str(tmp_path))
    assert run.code == 2 and "--input" in run.stderr
