"""The vector checks of the record rules, on values at their edges."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tests.vacations import (
    RECORD_CASES,
    data_records,
    ingest_steps,
    mutate_cre,
    refresh,
    valid_members,
    write_archive,
)
from transforms import rules


def _col(values):
    return pa.chunked_array([values], type=pa.string())


def _unparsable(parser):
    """The rule's view: a present value its parser could not read."""
    return lambda column: ~rules.is_null(column) & parser(column).is_null().to_numpy(
        zero_copy_only=False)


@pytest.mark.parametrize("check, good, bad", [
    (_unparsable(rules.parse_date), ["2024-02-29", "2000-02-29", "2026-12-31"],
     ["2026-02-29", "1900-02-29", "2026-13-01", "2026-1-01", "26-11-22"]),
    (_unparsable(rules.parse_timestamp), ["2026-11-22T09:15:00+01:00", "2026-11-22T09:15:00.5Z",
                           "2026-11-22T23:59:59-05:30"],
     ["2026-11-22T09:15:00", "2026-11-22 09:15:00+01:00", "2026-11-22T24:00:00+01:00",
      "2026-02-30T09:15:00+01:00"]),
    (rules.bad_iban, ["FR7630006000011234567890189", "GB82WEST12345698765432",
                      "DE89370400440532013000"],
     ["FR7630006000011234567890188", "FR76 3000 6000 0112 3456 7890 189",
      "fr7630006000011234567890189"]),
])
def test_checks_accept_good_values_and_refuse_bad_ones(check, good, bad):
    assert check(_col(good)).tolist() == [False] * len(good)
    assert check(_col(bad)).tolist() == [True] * len(bad)


def test_empty_values_are_left_to_the_required_rule():
    assert rules.bad_iban(_col([""])).tolist() == [False]
    assert rules.is_null(_col(["", "x"])).tolist() == [True, False]


def test_timestamps_become_utc_microseconds():
    parsed = rules.parse_timestamp(_col(["1970-01-01T01:00:00.25+01:00"]))
    assert parsed.to_pylist() == [250_000]


@pytest.mark.parametrize("code", sorted(RECORD_CASES))
def test_record_errors_go_to_reject_with_their_reason(tmp_path, code):
    """One broken record at the end of a valid member: only it is rejected, with its lineage."""
    members = mutate_cre(valid_members(tmp_path, cre_rows=100), RECORD_CASES[code])
    ingested = ingest_steps(write_archive(tmp_path, members))
    assert ingested.summary["status"] == "ACCEPTED_WITH_REJECTS", ingested.summary["errors"]
    assert ingested.summary["reject_codes"] == {code: 1}
    assert [item["error_code"] for item in ingested.rejects] == [code]
    [reject] = ingested.rejects
    assert reject["member_name"] == "CRE_0001.csv"
    assert reject["record_number"] == len(data_records(members["CRE_0001.csv"]))
    assert reject["raw"] == RECORD_CASES[code].splitlines()[-1]
    for member in ingested.summary["members"]:
        assert member["loaded"] + member["rejected"] == member["records"]


def test_bad_encoding_and_gesparam_range_are_record_errors(tmp_path):
    members = valid_members(tmp_path, cre_rows=100, gesparam_rows=40)
    members["CRE_0001.csv"] += (b"X-1;ACC00000001;DEBIT;2026-11-22T09:15:00+01:00;2026-11-22;1.00;"
                                b"EUR;;caf\xe9\n")
    members["GESPARAM_0001.csv"] += b"TAUX;K1;1.5;;2026-11-22;2026-11-01\n"
    ingested = ingest_steps(write_archive(tmp_path, refresh(members)))
    assert ingested.summary["reject_codes"] == {"BAD_ENCODING": 1, "BAD_RANGE": 1}
    reject = {item["error_code"]: item for item in ingested.rejects}
    assert reject["BAD_ENCODING"]["raw"].endswith("caf\\xe9")
