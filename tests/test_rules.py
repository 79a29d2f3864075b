"""The vector checks of the record rules, on values at their edges."""

from __future__ import annotations

import pyarrow as pa
import pytest

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
