"""``cre ingest`` end to end on generated archives: accepted, published, refused again, and
one archive broken on purpose per fatal code."""

from __future__ import annotations

import csv
import datetime
import io
import json
import tarfile
from decimal import Decimal
from pathlib import Path

import fastavro
import pytest

from tests.vacations import (
    ARCHIVE_CASE_CODES,
    ARCHIVE_CASE_OPTIONS,
    MEMBER_CASE_CODES,
    MEMBER_CASES,
    RECORD_CASES,
    VACATION,
    archive_case,
    data_records,
    mutate_cre,
    valid_members,
    write_archive,
)
from transforms.contract import Fatal

pytestmark = pytest.mark.integration


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


def _cre_lines(archive: Path) -> list[dict]:
    """Every CRE record of ``archive`` as the Avro schema types it (schemas/cre.avsc), read with
    tarfile and csv only (spec 1.3), not with the product's reader: a line number is the
    physical line (counted by line feeds) where the record starts, the header being line 1."""
    expected = []
    with tarfile.open(archive, "r:bz2") as tar:
        members = {info.name: tar.extractfile(info).read() for info in tar.getmembers()}
    encoding = json.loads(members["META.json"]).get("encoding", "UTF-8")
    for name in sorted(name for name in members if name.startswith("CRE_")):
        text = members[name].removeprefix(b"\xef\xbb\xbf").decode(encoding)
        reader = csv.reader(io.StringIO(text, newline="\n"), delimiter=";")
        header = [column.strip().lower() for column in next(reader)]
        start = reader.line_num + 1
        for number, values in enumerate(reader, 1):
            row = dict(zip(header, values, strict=True))
            expected.append({
                "vacation_id": VACATION, "member_name": name, "record_number": number,
                "line_number": start, "cre_id": row["cre_id"], "account_id": row["account_id"],
                "event_type": row["event_type"],
                "event_ts": datetime.datetime.fromisoformat(row["event_ts"]).astimezone(
                    datetime.UTC),
                "value_date": datetime.date.fromisoformat(row["value_date"]),
                "amount": Decimal(row["amount"]).quantize(Decimal("0.01")),
                "currency": row["currency"],
                "counterparty_iban": row["counterparty_iban"] or None,
                "label": row["label"] or None})
            start = reader.line_num + 1
    return expected


def test_values_survive_the_trip_to_avro(cre, tmp_path):
    archive = write_archive(tmp_path, valid_members(tmp_path, cre_rows=300))
    assert _ingest(cre, archive, tmp_path / "zones").code == 0
    expected = _cre_lines(archive)
    assert len(expected) == 300
    published = sorted(_published(tmp_path / "zones").get("CRE", []),
                       key=lambda record: (record["member_name"], record["record_number"]))
    assert len(published) == len(expected)
    for found, line in zip(published, expected, strict=True):  # every field of every record
        assert found == line
    # the generator's hard cases are among them (a quoted ';', '"' and line break, CRLF, a BOM)
    labels = [line["label"] or "" for line in expected]
    assert any(";" in label for label in labels) and any('"' in label for label in labels)
    assert any("\n" in label for label in labels)


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


# the reader, the rules and the decision are unit-tested case by case (test_archive,
# test_vacation_reader, test_rules, test_outcome); here one case per fatal code runs through the
# command, landing and the Proxy Producer zone
_MEMBER_E2E = sorted(case for case in MEMBER_CASES if case != "UNLISTED_MEMBER")
_ARCHIVE_E2E = ["NOT_BZIP2", "TRUNCATED", "TOO_MANY_BYTES", "SYMLINK"]
_ELSEWHERE = {  # fatal codes with a test of their own in this module
    "BAD_NAME": "test_bad_name_is_rejected_without_landing",
    "VACATION_ID_REUSED": "test_different_content_under_an_accepted_name_is_kept_but_refused",
}


def test_every_fatal_code_has_one_end_to_end_case():
    fatal = sorted(value for name, value in vars(Fatal).items() if not name.startswith("_"))
    covered = [*(MEMBER_CASE_CODES[case] for case in _MEMBER_E2E),
               *(ARCHIVE_CASE_CODES[case] for case in _ARCHIVE_E2E), *_ELSEWHERE]
    assert sorted(covered) == fatal
    assert all(name in globals() for name in _ELSEWHERE.values())


def test_a_record_error_is_published_to_reject_with_its_reason(cre, tmp_path):
    members = mutate_cre(valid_members(tmp_path, cre_rows=100), RECORD_CASES["BAD_ENUM"])
    run = _ingest(cre, write_archive(tmp_path, members), tmp_path / "zones")
    assert run.code == 0, run.stderr
    assert run.summary["status"] == "ACCEPTED_WITH_REJECTS"
    assert run.summary["reject_codes"] == {"BAD_ENUM": 1}
    published = _published(tmp_path / "zones")
    [reject] = published["REJECT"]
    assert reject["error_code"] == "BAD_ENUM"
    assert reject["error_message"].startswith("event_type: not one of")
    assert reject["member_name"] == "CRE_0001.csv"
    assert reject["record_number"] == len(data_records(members["CRE_0001.csv"]))
    assert reject["raw"] == RECORD_CASES["BAD_ENUM"].rstrip("\n")
    assert len(published["CRE"]) == 100
    for member in run.summary["members"]:
        assert member["loaded"] + member["rejected"] == member["records"]


@pytest.mark.parametrize("case", _MEMBER_E2E)
def test_fatal_member_rules_reject_the_whole_vacation(cre, tmp_path, case):
    members = MEMBER_CASES[case](valid_members(tmp_path))
    run = _ingest(cre, write_archive(tmp_path, members), tmp_path / "zones")
    assert run.code == 3, run.stderr
    assert run.summary["status"] == "REJECTED"
    assert run.error_codes == [MEMBER_CASE_CODES[case]]
    assert set(_published(tmp_path / "zones")) <= {"REJECT", "AUDIT"}


@pytest.mark.parametrize("case", _ARCHIVE_E2E)
def test_archive_rules_reject_the_whole_vacation(cre, tmp_path, case):
    path = archive_case(tmp_path, case)
    run = _ingest(cre, path, tmp_path / "zones", *ARCHIVE_CASE_OPTIONS.get(case, []))
    assert run.code == 3, run.stderr
    assert run.error_codes == [ARCHIVE_CASE_CODES[case]]
    assert set(_published(tmp_path / "zones")) <= {"REJECT", "AUDIT"}


def test_bad_name_is_rejected_without_landing(cre, tmp_path):
    path = write_archive(tmp_path, valid_members(tmp_path), name="BAF_20261122_07")
    run = _ingest(cre, path, tmp_path / "zones")
    assert run.code == 3 and run.error_codes == ["BAD_NAME"]
    assert not (tmp_path / "zones" / "landing").exists()


def test_usage_errors_exit_2(cre, tmp_path):
    run = cre("ingest", "--zones-root", str(tmp_path))
    assert run.code == 2 and "--input" in run.stderr
