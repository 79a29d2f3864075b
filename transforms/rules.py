"""The record rules of spec 1.3 as vector checks over Arrow columns.

Each check takes a string column and answers, for every record, whether the value breaks the
rule; nulls (empty values) are the business of the ``required`` rule alone. No check loops over
records in Python. Told ``native``, a check whose reference is a regular expression or numpy
arithmetic calls its compiled twin (``transforms.kernels``); Arrow's own kernels (lengths, sets)
serve both paths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms import contract, kernels
from transforms.contract import RecordCode
from transforms.currencies import ISO_4217

Check = Callable[[pa.ChunkedArray, bool], np.ndarray]  # (column, native) -> broken

_DATE_SHAPE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_TIMESTAMP_SHAPE = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
    r"(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])$"
)
_FRACTION = r"\.[0-9]{1,6}"


def _bad(mask) -> np.ndarray:
    """An Arrow boolean result as a numpy mask, null counting as not broken."""
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False)


def is_null(column: pa.ChunkedArray, native: bool = False) -> np.ndarray:
    return _bad(pc.equal(pc.binary_length(column), 0))


def _not_matching(column: pa.ChunkedArray, pattern: str) -> np.ndarray:
    return _bad(pc.invert(pc.match_substring_regex(column, pattern)))


def _class_bytes(characters: str) -> bytes:
    """The bytes a regular expression's character class body (``A-Z0-9_``) stands for."""
    allowed, index = bytearray(), 0
    while index < len(characters):
        if index + 2 < len(characters) and characters[index + 1] == "-":
            allowed += bytes(range(ord(characters[index]), ord(characters[index + 2]) + 1))
            index += 3
        else:
            allowed += characters[index].encode("ascii")
            index += 1
    return bytes(allowed)


def not_of(characters: str, least: int, most: int) -> Check:
    """Broken unless ``least`` to ``most`` characters of the class ``[characters]``."""
    pattern, allowed = f"^[{characters}]{{{least},{most}}}$", _class_bytes(characters)

    def check(column: pa.ChunkedArray, native: bool) -> np.ndarray:
        if native:
            return kernels.outside_charset(column, allowed, least, most)
        return _not_matching(column, pattern)
    return check


def not_decimal(column: pa.ChunkedArray, native: bool) -> np.ndarray:
    if native:
        return kernels.not_decimal(column)
    return _not_matching(column, contract.DECIMAL_PATTERN)


def longer_than(most: int) -> Check:
    def check(column: pa.ChunkedArray, native: bool) -> np.ndarray:
        if native:
            return kernels.longer_than(column, most)
        return _bad(pc.greater(pc.utf8_length(column), most))
    return check


def not_in(values: Sequence[str]) -> Check:
    value_set = pa.array(sorted(values), type=pa.string())
    return lambda column, native: _bad(pc.invert(pc.is_in(column, value_set=value_set)))


def fixed_width(column, width: int, filler: str) -> np.ndarray:
    """A column whose values all have ``width`` ASCII bytes (others replaced by ``filler``) as a
    ``(width, rows)`` matrix of byte values, for arithmetic over character positions."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    fits = pc.equal(pc.binary_length(array), width)
    array = pc.if_else(pc.fill_null(fits, False), array, filler)
    first = int(np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset])
    data = np.frombuffer(array.buffers()[2], dtype=np.uint8, count=len(array) * width,
                         offset=first)
    return np.ascontiguousarray(data.reshape(len(array), width).T)


def _number(text: np.ndarray, start: int, stop: int) -> np.ndarray:
    value = np.zeros(text.shape[1], dtype=np.int64)
    for position in range(start, stop):
        value = value * 10 + (text[position].astype(np.int64) - 48)
    return value


def _epoch_days(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil)."""
    year = year - (month <= 2)
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * np.where(month > 2, month - 3, month + 9) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _real_date(text: np.ndarray, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(is a real calendar date, days since the epoch) for YYYY-MM-DD at ``offset``."""
    year = _number(text, offset, offset + 4)
    month = _number(text, offset + 5, offset + 7)
    day = _number(text, offset + 8, offset + 10)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    good_month = (month >= 1) & (month <= 12)
    most = _DAYS_IN_MONTH[np.where(good_month, month, 0)] + (leap & (month == 2))
    real = good_month & (day >= 1) & (day <= most)
    return real, _epoch_days(year, month, day)


def parse_date(column, native: bool = False) -> pa.Array:
    """A date32 column, null where the value is not a real calendar date YYYY-MM-DD."""
    if native:
        return kernels.parse_date(column)
    shaped = _bad(pc.match_substring_regex(column, _DATE_SHAPE))
    real, days = _real_date(fixed_width(column, 10, "1970-01-01"))
    return pa.array(days.astype(np.int32), pa.date32(), mask=~(shaped & real))


def parse_timestamp(column, native: bool = False) -> pa.Array:
    """Microseconds since the epoch (UTC), null where not an ISO 8601 timestamp with offset."""
    if native:
        return kernels.parse_timestamp(column)
    shaped = _bad(pc.match_substring_regex(column, _TIMESTAMP_SHAPE))
    micros = np.zeros(len(column), dtype=np.int64)
    if pc.any(pc.match_substring(column, ".")).as_py():
        fraction = pc.utf8_rpad(
            pc.struct_field(pc.extract_regex(column, r"\.(?P<f>[0-9]{1,6})"), [0]), 6, "0")
        micros = pc.fill_null(pc.cast(fraction, pa.int64()), 0).to_numpy(zero_copy_only=False)
        column = pc.replace_substring_regex(column, _FRACTION, "")
    text = fixed_width(pc.replace_substring(column, "Z", "+00:00"), 25,
                       "1970-01-01T00:00:00+00:00")
    real, days = _real_date(text)
    sign = np.where(text[19] == ord("-"), -1, 1)
    offset = sign * (_number(text, 20, 22) * 3600 + _number(text, 23, 25) * 60)
    seconds = (days * 86400 + _number(text, 11, 13) * 3600 + _number(text, 14, 16) * 60
               + _number(text, 17, 19) - offset)
    return pa.array(seconds * 1_000_000 + micros, pa.int64(), mask=~(shaped & real))


def _mod97(text: np.ndarray) -> np.ndarray:
    """The remainder by 97 of each column of IBAN characters read as ISO 13616 digits."""
    remainder = np.zeros(text.shape[1], dtype=np.int64)
    for row in text.astype(np.int64):
        letter = row >= ord("A")
        remainder = np.where(letter, remainder * 100 + row - 55, remainder * 10 + row - 48) % 97
    return remainder


def bad_iban(column: pa.ChunkedArray, native: bool = False) -> np.ndarray:
    """ISO 13616: country and check digits moved after the BBAN, read as digits, mod 97 is 1.

    Moving four characters to the end is arithmetic: mod97(BBAN) * 10^6 + the six digits of
    the two letters and two digits. Left-padding the BBAN with zeros keeps its remainder, so
    every IBAN becomes one fixed-width column of a byte matrix.
    """
    if native:
        return kernels.bad_iban(column)
    present = ~is_null(column)
    broken = _not_matching(column, r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$") & present
    checked = np.flatnonzero(present & ~broken)
    values = column.take(pa.array(checked, type=pa.int64()))
    bban = fixed_width(pc.utf8_lpad(pc.utf8_slice_codeunits(values, 4), 30, "0"), 30, "0" * 30)
    head = fixed_width(pc.utf8_slice_codeunits(values, 0, 4), 4, "AA00")
    remainder = (_mod97(bban) * 1_000_000 + _mod97(head)) % 97
    wrong = np.zeros(len(present), dtype=bool)
    wrong[checked] = remainder != 1
    return broken | wrong


@dataclasses.dataclass(frozen=True)
class Rule:
    """A record rule: its error code, the message a sender reads, and its vector check of a
    table (and whether to run the compiled kernels)."""

    code: str
    message: str
    check: Callable[[pa.Table, bool], np.ndarray]


PARSERS: dict[str, dict[str, Callable[[pa.ChunkedArray, bool], pa.Array]]] = {
    contract.CRE: {"event_ts": parse_timestamp, "value_date": parse_date},
    contract.GESPARAM: {"valid_from": parse_date, "valid_to": parse_date},
}


def parsed(column: str) -> str:
    """The name of a column's parsed twin: parsed once, used by the rules and the output."""
    return f"{column}.parsed"


def with_parsed(table: pa.Table, kind: str, native: bool = False) -> pa.Table:
    for column, parser in PARSERS.get(kind, {}).items():
        table = table.append_column(parsed(column), parser(table[column], native))
    return table


def _on(column: str, check: Optional[Check]) -> Callable[[pa.Table, bool], np.ndarray]:
    if check is None:  # the value is present but its parser gave nothing
        return lambda table, native: (_bad(pc.is_null(table[parsed(column)]))
                                      & ~is_null(table[column]))
    return lambda table, native: check(table[column], native)


def _column_rules(
    column: str, *, required: bool, checks: Sequence[tuple[str, str, Optional[Check]]] = ()
) -> list[Rule]:
    rules = [Rule(RecordCode.REQUIRED_MISSING, f"{column} is required", _on(column, is_null))]
    rules += [Rule(code, f"{column}: {message}", _on(column, check))
              for code, message, check in checks]
    return rules if required else rules[1:]


_DATE = (RecordCode.BAD_DATE, "not a real calendar date YYYY-MM-DD", None)

RULES: dict[str, list[Rule]] = {
    contract.CRE: [
        *_column_rules("cre_id", required=True, checks=[
            (RecordCode.BAD_FORMAT, "1..36 characters of A-Z, a-z, 0-9 and -",
             not_of("A-Za-z0-9-", 1, 36))]),
        *_column_rules("account_id", required=True, checks=[
            (RecordCode.BAD_FORMAT, "11 characters of A-Z and 0-9",
             not_of("A-Z0-9", 11, 11))]),
        *_column_rules("event_type", required=True, checks=[
            (RecordCode.BAD_ENUM, "not one of " + " ".join(contract.EVENT_TYPES),
             not_in(contract.EVENT_TYPES))]),
        *_column_rules("event_ts", required=True, checks=[
            (RecordCode.BAD_TIMESTAMP, "not an ISO 8601 timestamp with offset", None)]),
        *_column_rules("value_date", required=True, checks=[_DATE]),
        *_column_rules("amount", required=True, checks=[
            (RecordCode.BAD_DECIMAL, "not a decimal with at most 16 digits and 2 decimals",
             not_decimal)]),
        *_column_rules("currency", required=True, checks=[
            (RecordCode.BAD_CURRENCY, "not an ISO 4217 alphabetic code", not_in(ISO_4217))]),
        *_column_rules("counterparty_iban", required=False, checks=[
            (RecordCode.BAD_IBAN, "not a valid IBAN (ISO 13616, no spaces)", bad_iban)]),
        *_column_rules("label", required=False, checks=[
            (RecordCode.TOO_LONG, "longer than 140 characters", longer_than(140))]),
    ],
    contract.GESPARAM: [
        *_column_rules("table_code", required=True, checks=[
            (RecordCode.BAD_FORMAT, "1..20 characters of A-Z, 0-9 and _",
             not_of("A-Z0-9_", 1, 20))]),
        *_column_rules("param_key", required=True, checks=[
            (RecordCode.TOO_LONG, "longer than 64 characters", longer_than(64))]),
        *_column_rules("param_value", required=True, checks=[
            (RecordCode.TOO_LONG, "longer than 1024 characters", longer_than(1024))]),
        *_column_rules("label", required=False, checks=[
            (RecordCode.TOO_LONG, "longer than 140 characters", longer_than(140))]),
        *_column_rules("valid_from", required=True, checks=[_DATE]),
        *_column_rules("valid_to", required=False, checks=[_DATE]),
    ],
}


def bad_range(table: pa.Table, native: bool = False) -> np.ndarray:
    """GESPARAM: valid_to before valid_from (both already known to be real dates)."""
    return _bad(pc.less(table[parsed("valid_to")], table[parsed("valid_from")]))
