"""The members of an archive checked against META and MONITOR as the reader streams them."""

from __future__ import annotations

import pytest

from tests.vacations import (
    MEMBER_CASE_CODES,
    MEMBER_CASES,
    ingest_steps,
    refresh,
    valid_members,
    write_archive,
)
from transforms.contract import Fatal, Limits, VacationError, VacationName
from transforms.facts import Digest, MemberDigest
from transforms.vacation_reader import VacationReader, parse_meta

# the member cases the reader itself refuses; reconciliation decides the others (test_outcome)
_READER_CASES = sorted(case for case, code in MEMBER_CASE_CODES.items()
                       if code not in (Fatal.RECON_COUNT_MISMATCH, Fatal.RECON_AMOUNT_MISMATCH,
                                       Fatal.REJECT_RATIO_EXCEEDED))


@pytest.mark.parametrize("case", _READER_CASES)
def test_fatal_member_rules_reject_the_whole_vacation(tmp_path, case):
    members = MEMBER_CASES[case](valid_members(tmp_path))
    ingested = ingest_steps(write_archive(tmp_path, members))
    assert ingested.summary["status"] == "REJECTED"
    assert ingested.error_codes == [MEMBER_CASE_CODES[case]]


def _passes(archive) -> tuple[int, list[str]]:
    """How many times the reader opens ``archive``, and the kinds of events it gives."""
    opened = []

    def open_archive():
        opened.append(archive)
        return open(archive, "rb")

    name = VacationName.parse(archive.name)
    events = [type(event).__name__ for event in VacationReader(open_archive, name, Limits())]
    return len(opened), events


def test_meta_first_is_read_in_one_pass_and_meta_after_the_data_in_two(tmp_path):
    members = valid_members(tmp_path)
    (tmp_path / "first").mkdir()
    (tmp_path / "last").mkdir()
    assert _passes(write_archive(tmp_path / "first", members)) == (
        1, ["Meta", "Monitor", *["ParsedBatch", "MemberDigest"] * 3])
    members["META.json"] = members.pop("META.json")
    opened, events = _passes(write_archive(tmp_path / "last", members))
    assert opened == 2 and events[0] == "Meta" and "FatalError" not in events


def test_meta_after_the_data_is_read_in_a_second_pass(tmp_path):
    members = valid_members(tmp_path)
    meta = members.pop("META.json")
    members["META.json"] = meta
    summary = ingest_steps(write_archive(tmp_path, members)).summary
    assert summary["status"] == "ACCEPTED", summary["errors"]
    assert summary["totals"] == {"records": 60, "loaded": 60, "rejected": 0}


def test_iso_8859_1_members_are_decoded(tmp_path):
    members = valid_members(tmp_path, cre_rows=200, encoding="ISO-8859-1")
    ingested = ingest_steps(write_archive(tmp_path, members))
    assert ingested.summary["status"] == "ACCEPTED", ingested.summary["errors"]
    labels = [record["label"] for record in ingested.loaded["CRE"] if record["label"]]
    assert any(char in label for label in labels for char in "éèç")


def test_line_number_is_where_a_multiline_record_starts(tmp_path):
    members = valid_members(tmp_path, cre_rows=20)
    members["CRE_0001.csv"] += (b'X-1;ACC00000001;DEBIT;2026-11-22T09:15:00+01:00;2026-11-22;1.00;'
                                b'EUR;;"deux\nlignes; et ""quotes"""\n'
                                b'X-2;ACC00000001;GIFT;2026-11-22T09:15:00+01:00;2026-11-22;1.00;'
                                b'EUR;;\n')
    members = refresh(members)
    ingested = ingest_steps(write_archive(tmp_path, members))
    physical = members["CRE_0001.csv"].count(b"\n")
    assert ingested.summary["reject_codes"] == {"BAD_ENUM": 1}
    assert ingested.rejects[0]["line_number"] == physical  # the last line of the file
    loaded = {record["cre_id"]: record for record in ingested.loaded["CRE"]}
    assert loaded["X-1"]["label"] == 'deux\nlignes; et "quotes"'


def test_the_file_name_gives_the_vacation_id_date_and_slot():
    assert VacationName.parse("BAF_20261122_03.tar.bz2") == VacationName(
        "BAF_20261122_03", "2026-11-22", 3)
    for bad in ("BAF_20261122_07.tar.bz2", "BAF_20260230_01.tar.bz2", "BAF_20261122_03.tar.gz",
                "baf_20261122_03.tar.bz2"):
        assert VacationName.parse(bad) is None, bad


_META = {"vacation_id": "BAF_20261122_03", "sender": "ARKEA-BAF", "business_date": "2026-11-22",
         "slot": 3, "produced_at": "2026-11-22T10:00:00+01:00", "format_version": "1.0",
         "members": [{"name": "MONITOR.csv", "type": "MONITOR", "records": 1, "bytes": 9,
                      "sha256": "a" * 64},
                     {"name": "CRE_0001.csv", "type": "CRE", "records": 5, "bytes": 90,
                      "sha256": "b" * 64}]}
_MONITOR, _CRE = _META["members"]


@pytest.mark.parametrize("changes, code, message", [
    ({"format_version": "2.0"}, Fatal.META_INVALID, "format_version must be 1.0"),
    ({"slot": True, "sender": 1}, Fatal.META_INVALID, "sender is missing or not a str"),
    ({"slot": 7, "sender": "X"}, Fatal.META_INVALID, "slot must be an int from 1 to 6"),
    ({"business_date": "20261122"}, Fatal.META_INVALID, "business_date is not a date YYYY-MM-DD"),
    ({"produced_at": "2026-11-22T10:00:00"}, Fatal.META_INVALID,
     "produced_at is not an ISO 8601 timestamp with offset"),
    ({"encoding": ["UTF-8"]}, Fatal.META_INVALID, "encoding must be one of UTF-8, ISO-8859-1"),
    ({"members": [_MONITOR, {**_CRE, "sha256": "B" * 64}]}, Fatal.META_INVALID,
     "CRE_0001.csv: sha256 must be 64 lower-case hex digits"),
    ({"members": [_MONITOR, {**_CRE, "records": -1, "bytes": "9"}]}, Fatal.META_INVALID,
     "CRE_0001.csv: records must be an int >= 0"),
    ({"members": [{**_MONITOR, "type": "CRE"}, _CRE]}, Fatal.META_INVALID,
     "members entry 'MONITOR.csv' does not match the pattern of type CRE"),
    ({"members": [_MONITOR, _CRE, _CRE]}, Fatal.META_INVALID, "CRE_0001.csv is listed twice"),
    ({"members": [_MONITOR]}, Fatal.META_INVALID, "no CRE member is listed"),
    ({"members": [_MONITOR, "CRE_0001.csv"]}, Fatal.META_INVALID,
     "a members entry is not an object"),
    ({"vacation_id": "BAF_20261122_04"}, Fatal.VACATION_ID_MISMATCH,
     "META vacation_id 'BAF_20261122_04', file 'BAF_20261122_03'"),
    ({"slot": 4}, Fatal.VACATION_ID_MISMATCH,
     "META says 2026-11-22 slot 4, the file name 2026-11-22 slot 3"),
])
def test_meta_breaking_a_rule_is_refused_with_the_first_broken_one(changes, code, message):
    with pytest.raises(VacationError) as refused:
        parse_meta({**_META, **changes}, VacationName.parse("BAF_20261122_03.tar.bz2"))
    assert refused.value.code == code
    assert refused.value.message.removeprefix("META.json: ") == message


def test_meta_in_the_json_is_the_meta_fact():
    meta = parse_meta(_META, VacationName.parse("BAF_20261122_03.tar.bz2"))
    assert meta.encoding == "UTF-8" and meta.slot == 3
    assert meta.members[1] == MemberDigest("CRE_0001.csv", "CRE", 5, Digest(90, "b" * 64))
